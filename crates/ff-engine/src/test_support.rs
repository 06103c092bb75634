//! Test doubles for the service unit tests: a maintenance backend that plays
//! back scripted results, a completion backend fed by channels, and an
//! in-memory outbox that cascades.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use ff_core::cascade::{CascadeReport, FlowCancelResponse, NodesAdded};
use ff_core::flow::{EdgeSpec, FlowCreated, FlowSpec, NodeSpec};
use ff_core::{
    CompletionBackend, CompletionPayload, CompletionStream, EngineError, ExecutionId, FlowId,
    FlowOps, LeaseHandle, MaintenanceOps, Millis, Outcome,
};
use futures::channel::mpsc;
use tokio::sync::Mutex as AsyncMutex;

/// Answers every scan with the next scripted result, then `Ok(0)`.
#[derive(Debug, Default)]
pub struct ScriptedOps {
    results: Mutex<VecDeque<Result<u32, EngineError>>>,
    calls: AtomicU32,
}

impl ScriptedOps {
    pub fn with_results(results: impl IntoIterator<Item = Result<u32, EngineError>>) -> Arc<Self> {
        Arc::new(Self {
            results: Mutex::new(results.into_iter().collect()),
            calls: AtomicU32::new(0),
        })
    }

    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    fn next(&self) -> Result<u32, EngineError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut results = self.results.lock().unwrap_or_else(|p| p.into_inner());
        results.pop_front().unwrap_or(Ok(0))
    }
}

#[async_trait]
impl MaintenanceOps for ScriptedOps {
    async fn expire_leases(&self, _limit: u32) -> Result<u32, EngineError> {
        self.next()
    }

    async fn promote_scheduled(&self, _limit: u32) -> Result<u32, EngineError> {
        self.next()
    }

    async fn expire_deadlines(&self, _limit: u32) -> Result<u32, EngineError> {
        self.next()
    }

    async fn expire_suspensions(&self, _limit: u32) -> Result<u32, EngineError> {
        self.next()
    }

    async fn undispatched_completions(
        &self,
        _older_than_ms: u64,
        _limit: u32,
    ) -> Result<Vec<CompletionPayload>, EngineError> {
        Ok(Vec::new())
    }

    async fn reconcile_blocked(
        &self,
        _older_than_ms: u64,
        _limit: u32,
    ) -> Result<u32, EngineError> {
        self.next()
    }

    async fn trim_outbox(&self, _older_than_ms: u64, _limit: u32) -> Result<u32, EngineError> {
        self.next()
    }
}

/// Each subscription is a fresh channel whose sender the test picks up with
/// [`ChannelCompletions::next_subscriber`]; the first `fail` subscriptions err.
#[derive(Debug)]
pub struct ChannelCompletions {
    fail: AtomicU32,
    senders: mpsc::UnboundedSender<mpsc::UnboundedSender<CompletionPayload>>,
    subscribers: AsyncMutex<mpsc::UnboundedReceiver<mpsc::UnboundedSender<CompletionPayload>>>,
}

impl ChannelCompletions {
    pub fn new() -> Arc<Self> {
        Self::failing_first(0)
    }

    pub fn failing_first(fail: u32) -> Arc<Self> {
        let (senders, subscribers) = mpsc::unbounded();
        Arc::new(Self {
            fail: AtomicU32::new(fail),
            senders,
            subscribers: AsyncMutex::new(subscribers),
        })
    }

    /// The sending side of the next subscription the listener opens.
    pub async fn next_subscriber(&self) -> mpsc::UnboundedSender<CompletionPayload> {
        use futures::StreamExt;
        let mut subscribers = self.subscribers.lock().await;
        match subscribers.next().await {
            Some(sender) => sender,
            None => panic!("completion backend dropped"),
        }
    }
}

#[async_trait]
impl CompletionBackend for ChannelCompletions {
    async fn subscribe_completions(&self) -> Result<CompletionStream, EngineError> {
        let failing = self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(EngineError::Unavailable {
                message: "scripted subscribe failure".into(),
            });
        }
        let (tx, rx) = mpsc::unbounded();
        self.senders
            .unbounded_send(tx)
            .map_err(|_| EngineError::Unavailable {
                message: "test is gone".into(),
            })?;
        Ok(Box::pin(rx))
    }
}

/// A payload with `outcome` for a fresh solo execution, at a fresh outbox seq.
pub fn payload(outcome: Outcome) -> CompletionPayload {
    static SEQ: AtomicU64 = AtomicU64::new(1);
    CompletionPayload {
        execution_id: ExecutionId::new(),
        namespace: "default".into(),
        flow_id: None,
        node_key: None,
        outcome,
        attempt: 1,
        committed_at: 1_000,
        partition: 0,
        seq: SEQ.fetch_add(1, Ordering::Relaxed),
    }
}

/// A completed flow member's payload, at a fresh outbox seq.
pub fn flow_payload() -> CompletionPayload {
    CompletionPayload {
        flow_id: Some(FlowId::new()),
        node_key: Some("parent".into()),
        ..payload(Outcome::Completed)
    }
}

/// An in-memory outbox. `undispatched_completions` answers the entries not
/// dispatched yet (whatever their age); `cascade_completion` dispatches one
/// after a millisecond and, for a flow member, promotes one made-up child
/// `lag_ms` after the commit. Unknown payloads are dispatched too, so it also
/// serves the listener. `reconcile_blocked` plays back scripted results.
#[derive(Debug, Default)]
pub struct FakeOutbox {
    state: Mutex<OutboxState>,
}

#[derive(Debug, Default)]
struct OutboxState {
    entries: Vec<CompletionPayload>,
    dispatched: HashSet<(u32, u64)>,
    failing: bool,
    lag_ms: Millis,
    reads: Vec<(u64, u32)>,
    blocked: VecDeque<u32>,
    reconcile_calls: u32,
    in_flight: u32,
    max_in_flight: u32,
    batches: Vec<usize>,
}

impl FakeOutbox {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn state(&self) -> MutexGuard<'_, OutboxState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, payload: CompletionPayload) {
        self.state().entries.push(payload);
    }

    /// Makes every cascade fail (or succeed again).
    pub fn fail_cascades(&self, failing: bool) {
        self.state().failing = failing;
    }

    pub fn set_lag_ms(&self, lag_ms: Millis) {
        self.state().lag_ms = lag_ms;
    }

    /// Scripts the answers of the next `reconcile_blocked` calls (then 0).
    pub fn script_blocked(&self, results: impl IntoIterator<Item = u32>) {
        self.state().blocked.extend(results);
    }

    /// Every `undispatched_completions` call's `(older_than_ms, limit)`.
    pub fn reads(&self) -> Vec<(u64, u32)> {
        self.state().reads.clone()
    }

    pub fn reconcile_calls(&self) -> u32 {
        self.state().reconcile_calls
    }

    pub fn dispatched(&self) -> usize {
        self.state().dispatched.len()
    }

    /// The size of every `cascade_completions` call, in call order.
    pub fn batches(&self) -> Vec<usize> {
        self.state().batches.clone()
    }

    /// The most cascades that were ever in flight at once.
    pub fn max_in_flight(&self) -> u32 {
        self.state().max_in_flight
    }
}

#[async_trait]
impl MaintenanceOps for FakeOutbox {
    async fn expire_leases(&self, _limit: u32) -> Result<u32, EngineError> {
        Ok(0)
    }

    async fn promote_scheduled(&self, _limit: u32) -> Result<u32, EngineError> {
        Ok(0)
    }

    async fn expire_deadlines(&self, _limit: u32) -> Result<u32, EngineError> {
        Ok(0)
    }

    async fn expire_suspensions(&self, _limit: u32) -> Result<u32, EngineError> {
        Ok(0)
    }

    async fn undispatched_completions(
        &self,
        older_than_ms: u64,
        limit: u32,
    ) -> Result<Vec<CompletionPayload>, EngineError> {
        let mut state = self.state();
        state.reads.push((older_than_ms, limit));
        let state = &*state;
        Ok(state
            .entries
            .iter()
            .filter(|p| !state.dispatched.contains(&(p.partition, p.seq)))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn reconcile_blocked(
        &self,
        _older_than_ms: u64,
        _limit: u32,
    ) -> Result<u32, EngineError> {
        let mut state = self.state();
        state.reconcile_calls += 1;
        Ok(state.blocked.pop_front().unwrap_or(0))
    }

    async fn trim_outbox(&self, _older_than_ms: u64, _limit: u32) -> Result<u32, EngineError> {
        Ok(0)
    }
}

fn not_faked() -> EngineError {
    EngineError::conflict("not faked")
}

#[async_trait]
impl FlowOps for FakeOutbox {
    async fn create_flow(&self, _spec: FlowSpec) -> Result<FlowCreated, EngineError> {
        Err(not_faked())
    }

    async fn add_nodes(
        &self,
        _handle: &LeaseHandle,
        _nodes: Vec<NodeSpec>,
        _edges: Vec<EdgeSpec>,
    ) -> Result<NodesAdded, EngineError> {
        Err(not_faked())
    }

    async fn cancel_flow(&self, _id: FlowId) -> Result<FlowCancelResponse, EngineError> {
        Err(not_faked())
    }

    async fn cascade_completion(
        &self,
        payload: &CompletionPayload,
    ) -> Result<CascadeReport, EngineError> {
        {
            let mut state = self.state();
            state.in_flight += 1;
            state.max_in_flight = state.max_in_flight.max(state.in_flight);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        let mut state = self.state();
        state.in_flight -= 1;
        if state.failing {
            return Err(EngineError::Unavailable {
                message: "scripted cascade failure".into(),
            });
        }
        let mut report = CascadeReport {
            cascaded_at: payload.committed_at + state.lag_ms,
            ..CascadeReport::default()
        };
        if state.dispatched.insert((payload.partition, payload.seq)) {
            report.dispatched = true;
            if payload.flow_id.is_some() {
                report.promoted.push(ExecutionId::new());
            }
        }
        Ok(report)
    }

    /// Records the batch, then cascades each payload in turn.
    async fn cascade_completions(
        &self,
        payloads: &[CompletionPayload],
    ) -> Result<Vec<Result<CascadeReport, EngineError>>, EngineError> {
        self.state().batches.push(payloads.len());
        let mut reports = Vec::with_capacity(payloads.len());
        for payload in payloads {
            reports.push(self.cascade_completion(payload).await);
        }
        Ok(reports)
    }
}
