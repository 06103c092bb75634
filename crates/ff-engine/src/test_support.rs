//! Test doubles for the service unit tests: a maintenance backend that plays
//! back scripted results and a completion backend fed by channels.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ff_core::{
    CompletionBackend, CompletionPayload, CompletionStream, EngineError, ExecutionId,
    MaintenanceOps, Outcome,
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

    async fn undispatched_completions(
        &self,
        _older_than_ms: u64,
        _limit: u32,
    ) -> Result<Vec<CompletionPayload>, EngineError> {
        Ok(Vec::new())
    }

    async fn reconcile_blocked(&self, _limit: u32) -> Result<u32, EngineError> {
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

/// A payload with `outcome` for a fresh execution.
pub fn payload(outcome: Outcome) -> CompletionPayload {
    CompletionPayload {
        execution_id: ExecutionId::new(),
        namespace: "default".into(),
        flow_id: None,
        node_key: None,
        outcome,
        attempt: 1,
        committed_at: 0,
        partition: 0,
        seq: 0,
    }
}
