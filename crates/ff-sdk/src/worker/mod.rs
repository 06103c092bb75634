//! [`Worker`]: claims executions from lanes and runs their handlers.
//!
//! The runtime (in `runtime`) bounds concurrency, claims up to the free
//! slots at once (prefetch), renews every lease at a third of its length,
//! stops a handler whose execution was cancelled (its renewal answers
//! `NotActive`), and shuts down gracefully: no more claims, running handlers
//! get a grace period, then they are aborted and their leases released.

mod handler;
mod runtime;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ff_core::{ClaimRequest, EngineError, Limits};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use handler::{Fail, HandlerError, JobContext, Release, Retry, StopReason, Suspend};

use crate::Client;
use handler::{boxed, BoxHandler};
use runtime::{Phase, Shared, Tally};

/// Configures and starts a [`Worker`].
pub struct WorkerBuilder {
    client: Client,
    lanes: Vec<String>,
    capabilities: Vec<String>,
    concurrency: usize,
    worker_id: Option<String>,
    claim_wait: Duration,
    shutdown_grace: Duration,
    cancel_grace: Duration,
    handlers: HashMap<String, BoxHandler>,
    fallback: Option<BoxHandler>,
}

impl std::fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("lanes", &self.lanes)
            .field("capabilities", &self.capabilities)
            .field("concurrency", &self.concurrency)
            .field("kinds", &self.handlers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl WorkerBuilder {
    /// Claims from `lane` (call again for more lanes).
    pub fn lane(mut self, lane: impl Into<String>) -> Self {
        self.lanes.push(lane.into());
        self
    }

    /// Capabilities this worker advertises; it is offered only executions
    /// whose required capabilities these cover.
    pub fn capabilities<S: Into<String>>(mut self, caps: impl IntoIterator<Item = S>) -> Self {
        self.capabilities = caps.into_iter().map(Into::into).collect();
        self
    }

    /// Handlers running at once (default 10); claims take up to the free slots.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The id recorded on each attempt (default `ff-sdk-<pid>-<n>`).
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// How long one claim waits for work (default 2 s). A shutdown never
    /// cuts a claim short (its leases would be stranded); executions a claim
    /// brings in after the shutdown began are released at once.
    pub fn claim_wait(mut self, wait: Duration) -> Self {
        self.claim_wait = wait;
        self
    }

    /// How long a shutdown lets running handlers finish before aborting them
    /// and releasing their leases (default 30 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// How long a handler whose execution was cancelled (or whose lease was
    /// lost) may take to notice [`JobContext::stopped`] before it is aborted
    /// (default 0: aborted at once).
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = grace;
        self
    }

    /// Runs `f` for executions of `kind`. `f` returns any serializable
    /// result, or a [`HandlerError`]: a plain error (converted by `?`) or
    /// [`Retry`] fails the attempt retryably, [`Fail`] for good, [`Release`]
    /// hands the execution back.
    pub fn handler<F, Fut, R>(mut self, kind: impl Into<String>, f: F) -> Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
        R: Serialize + Send + 'static,
    {
        self.handlers.insert(kind.into(), boxed(f));
        self
    }

    /// Runs `f` for every kind without a handler of its own. Without one, an
    /// execution of an unknown kind fails permanently, naming the kinds this
    /// worker knows.
    pub fn fallback_handler<F, Fut, R>(mut self, f: F) -> Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
        R: Serialize + Send + 'static,
    {
        self.fallback = Some(boxed(f));
        self
    }

    /// Checks the configuration and starts claiming on the current tokio
    /// runtime.
    pub fn start(self) -> Result<Worker, EngineError> {
        if self.handlers.is_empty() && self.fallback.is_none() {
            return Err(EngineError::invalid(
                "handlers",
                "register at least one handler",
            ));
        }
        let worker_id = self.worker_id.unwrap_or_else(default_worker_id);
        let mut claim = ClaimRequest::new(self.lanes, worker_id)
            .namespace(self.client.namespace())
            .capabilities(self.capabilities);
        claim.validate(&Limits::default())?;
        let (phase, _) = watch::channel(Phase::Running);
        let mut kinds: Vec<String> = self.handlers.keys().cloned().collect();
        kinds.sort();
        let shared = Arc::new(Shared {
            client: self.client,
            claim,
            concurrency: self.concurrency,
            claim_wait: self.claim_wait,
            shutdown_grace: self.shutdown_grace,
            cancel_grace: self.cancel_grace,
            handlers: self.handlers,
            fallback: self.fallback,
            kinds,
            phase,
            tally: Tally::default(),
        });
        let task = tokio::spawn(runtime::run(shared.clone()));
        Ok(Worker {
            shared,
            task: Some(task),
        })
    }
}

fn default_worker_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "ff-sdk-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A running worker. Stop it with [`Worker::shutdown`]; dropping it starts
/// the same shutdown in the background.
#[derive(Debug)]
pub struct Worker {
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts configuring a worker that uses `client`'s transport and
    /// namespace.
    pub fn builder(client: Client) -> WorkerBuilder {
        WorkerBuilder {
            client,
            lanes: Vec::new(),
            capabilities: Vec::new(),
            concurrency: 10,
            worker_id: None,
            claim_wait: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(30),
            cancel_grace: Duration::ZERO,
            handlers: HashMap::new(),
            fallback: None,
        }
    }

    /// The worker id recorded on its attempts.
    pub fn id(&self) -> &str {
        &self.shared.claim.worker_id
    }

    /// What the worker did so far.
    pub fn stats(&self) -> WorkerStats {
        self.shared.tally.snapshot()
    }

    /// Stops claiming, asks running handlers to stop ([`StopReason::Shutdown`])
    /// and lets them finish for up to the shutdown grace; then aborts the
    /// rest and releases their leases at once. Returns the final counts.
    pub async fn shutdown(mut self) -> WorkerStats {
        self.shared.phase.send_if_modified(|phase| {
            let changed = *phase == Phase::Running;
            if changed {
                *phase = Phase::Draining;
            }
            changed
        });
        if let Some(task) = self.task.take() {
            if let Err(err) = task.await {
                tracing::error!(%err, "the worker runtime ended abnormally");
            }
        }
        self.shared.tally.snapshot()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.task.is_some() {
            self.shared.phase.send_if_modified(|phase| {
                let changed = *phase == Phase::Running;
                if changed {
                    *phase = Phase::Draining;
                }
                changed
            });
        }
    }
}

/// Counts of what a worker's handlers led to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WorkerStats {
    /// Executions claimed (each one attempt).
    pub claimed: u64,
    pub completed: u64,
    /// Attempts failed retryably.
    pub retried: u64,
    /// Attempts failed for good (or out of attempts).
    pub failed: u64,
    /// Leases handed back without using up the attempt.
    pub released: u64,
    /// Attempts suspended to wait for signals.
    pub suspended: u64,
    /// Handlers stopped because their execution was cancelled or the lease
    /// was lost.
    pub abandoned: u64,
    /// Calls to the engine that failed (claims, reports), then retried.
    pub errors: u64,
}
