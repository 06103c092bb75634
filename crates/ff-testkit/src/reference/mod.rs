//! The in-memory reference backend: every operation straight from the
//! `ff-core` rules over a map behind one mutex. It is the oracle of the
//! differential test and a test double for users.

mod executions;
mod flow_control;
mod flows;
mod leases;
mod maintenance;
mod reads;
mod signals;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use ff_backend_support::{CompletionBroadcast, WorkSignal};
use ff_core::flow::{FlowEdge, FlowNode, FlowRecord};
use ff_core::{
    CompletionBackend, CompletionPayload, CompletionStream, EngineError, Execution, ExecutionId,
    FlowId, Limits, SharedClock, State,
};

/// The reference backend. Clones share one store.
#[derive(Clone, Debug)]
pub struct ReferenceBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Mutex<Store>,
    clock: SharedClock,
    limits: Limits,
    work: WorkSignal,
    completions: CompletionBroadcast,
    keyring: ff_core::suspension::KeyringCache,
    /// Candidates the claims passed over, by limit.
    passed_over: Arc<ff_core::flow_control::PassedOver>,
}

#[derive(Debug, Default, Clone)]
struct Store {
    executions: BTreeMap<ExecutionId, Execution>,
    idempotency: HashMap<(String, String), ExecutionId>,
    /// Trimmed entries leave `None`, so `seq - 1` stays the index.
    outbox: Vec<Option<OutboxEntry>>,
    flows: BTreeMap<FlowId, StoredFlow>,
    flow_keys: HashMap<(String, String), FlowId>,
    waitpoint_keys: Vec<ff_core::suspension::WaitpointKey>,
    flow_control: flow_control::FlowControl,
}

/// A flow with its nodes (in creation order) and edges.
#[derive(Debug, Clone)]
struct StoredFlow {
    record: FlowRecord,
    nodes: Vec<FlowNode>,
    edges: Vec<FlowEdge>,
}

impl StoredFlow {
    fn new(record: FlowRecord) -> Self {
        Self {
            record,
            nodes: Vec::new(),
            edges: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
struct OutboxEntry {
    payload: CompletionPayload,
    dispatched: bool,
}

/// What one locked operation produced, published after the lock is gone.
#[derive(Default)]
struct Effects {
    completions: Vec<CompletionPayload>,
    work_ready: bool,
}

impl ReferenceBackend {
    /// An empty backend on `clock` with default limits.
    pub fn new(clock: SharedClock) -> Self {
        Self::with_limits(clock, Limits::default())
    }

    /// An empty backend on `clock` with `limits`.
    pub fn with_limits(clock: SharedClock, limits: Limits) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: Mutex::new(Store::default()),
                clock,
                limits,
                work: WorkSignal::new(),
                completions: CompletionBroadcast::new(),
                keyring: Default::default(),
                passed_over: Default::default(),
            }),
        }
    }

    fn now(&self) -> ff_core::Millis {
        self.inner.clock.now_ms()
    }

    /// Runs `f` on the locked store, then publishes its effects.
    fn with_store<T>(&self, f: impl FnOnce(&mut Store, &mut Effects) -> T) -> T {
        let mut effects = Effects::default();
        let out = f(&mut self.lock(), &mut effects);
        if effects.work_ready {
            self.inner.work.bump();
        }
        for payload in effects.completions {
            self.inner.completions.send(payload);
        }
        out
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        self.inner
            .store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Store {
    fn flow_mut(&mut self, id: FlowId) -> Result<&mut StoredFlow, EngineError> {
        self.flows
            .get_mut(&id)
            .ok_or_else(|| EngineError::NotFound {
                entity: "flow",
                id: id.to_string(),
            })
    }

    fn get_mut(&mut self, id: ExecutionId) -> Result<&mut Execution, EngineError> {
        self.executions
            .get_mut(&id)
            .ok_or_else(|| EngineError::execution_not_found(id))
    }

    /// Applies `f` to one execution and records what the change implies: an
    /// outbox entry when it became terminal, a wake-up when it became
    /// claimable.
    fn update<T>(
        &mut self,
        id: ExecutionId,
        now: ff_core::Millis,
        effects: &mut Effects,
        f: impl FnOnce(&mut Execution) -> T,
    ) -> Result<T, EngineError> {
        let exec = self.get_mut(id)?;
        let before = exec.state;
        let out = f(exec);
        let after = exec.state;
        let completion = (!before.is_terminal() && after.is_terminal()).then(|| exec.clone());
        // Work to wake a claim for: an execution became claimable, or a
        // limited one left running and freed its slot.
        let freed = before == State::Running && exec.concurrency_key.is_some();
        if before != after && (matches!(after, State::Ready) || freed) {
            effects.work_ready = true;
        }
        if let Some(exec) = completion {
            self.record_completion(&exec, now, effects);
        }
        Ok(out)
    }

    fn record_completion(&mut self, exec: &Execution, now: ff_core::Millis, effects: &mut Effects) {
        let seq = self.outbox.len() as u64 + 1;
        if let Some(payload) = CompletionPayload::for_execution(exec, now, 0, seq) {
            effects.completions.push(payload.clone());
            self.outbox.push(Some(OutboxEntry {
                payload,
                dispatched: false,
            }));
        }
    }
}

#[async_trait]
impl CompletionBackend for ReferenceBackend {
    async fn subscribe_completions(&self) -> Result<CompletionStream, EngineError> {
        Ok(self.inner.completions.subscribe())
    }
}
