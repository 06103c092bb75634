//! What the engine tests share: the backends and [`for_each_backend!`]
//! (in `backends`), in-test workers that journal every step, and bounded
//! waits.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

mod backends;

pub(crate) use backends::{backend_tests, for_each_backend};
pub use backends::{Kind, Store};

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ff_core::flow::{FlowState, FlowView, NodeSpec};
use ff_core::{
    ClaimRequest, EngineBackend, ErrorKind, ExecutionId, FlowId, JsonText, RetryPolicy,
    SubmitRequest,
};
use ff_engine::shutdown::{self, Signal, Trigger};
use ff_engine::{
    deadline_scanner, dependency_reconciler, lease_expiry, scheduled_promoter, EngineConfig,
};
use tokio::task::JoinHandle;

/// The lane every test node runs on.
pub const LANE: &str = "flow";

/// Short service intervals, so expiry and retries take milliseconds; the
/// reconciler as given.
pub fn engine_config(reconciler: dependency_reconciler::Config) -> EngineConfig {
    EngineConfig {
        lease_expiry: lease_expiry::Config {
            interval: Duration::from_millis(50),
            ..Default::default()
        },
        scheduled_promoter: scheduled_promoter::Config {
            interval: Duration::from_millis(20),
            ..Default::default()
        },
        deadline_scanner: deadline_scanner::Config::default(),
        dependency_reconciler: reconciler,
        ..Default::default()
    }
}

/// A node on [`LANE`] with a short lease and quick retries, so work held
/// by a dead worker comes back within a second.
pub fn node(key: &str) -> NodeSpec {
    let retry = RetryPolicy {
        max_attempts: 5,
        initial_backoff_ms: 50,
        max_backoff_ms: 200,
        jitter_percent: 0,
    };
    NodeSpec::new(
        key,
        SubmitRequest::new(LANE, "step", JsonText::null())
            .lease_ms(500)
            .retry(retry),
    )
}

/// What a worker saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Claimed,
    /// `complete` was accepted.
    Completed,
    /// `complete` was refused, or the call failed.
    Refused(ErrorKind),
}

/// One step of one attempt, as a worker saw it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: ExecutionId,
    pub node: String,
    pub attempt: u32,
    pub epoch: u64,
    pub event: Event,
    pub at: Instant,
}

/// Every worker's steps, in the order they happened.
#[derive(Debug, Default)]
pub struct Journal(Mutex<Vec<Entry>>);

impl Journal {
    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, entry: Entry) {
        self.lock().push(entry);
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.lock().clone()
    }

    /// When the node's accepted `complete` returned.
    pub fn completed_at(&self, node: &str) -> Option<Instant> {
        self.lock()
            .iter()
            .find(|e| e.node == node && e.event == Event::Completed)
            .map(|e| e.at)
    }

    /// When the node was first claimed.
    pub fn claimed_at(&self, node: &str) -> Option<Instant> {
        self.lock()
            .iter()
            .find(|e| e.node == node && e.event == Event::Claimed)
            .map(|e| e.at)
    }
}

/// In-test workers: each claims one execution at a time from [`LANE`] and
/// completes it at once with its node key as the result.
#[derive(Debug)]
pub struct Workers {
    trigger: Trigger,
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    pub fn spawn(backend: Arc<dyn EngineBackend>, count: usize, journal: Arc<Journal>) -> Self {
        let (trigger, _) = shutdown::channel();
        let tasks = (0..count)
            .map(|i| {
                let worker = work(
                    backend.clone(),
                    format!("worker-{i}"),
                    journal.clone(),
                    trigger.signal(),
                );
                tokio::spawn(worker)
            })
            .collect();
        Self { trigger, tasks }
    }

    /// Asks every worker to stop after its current step, and waits.
    pub async fn stop(self) {
        self.trigger.trigger();
        self.join().await;
    }

    /// Waits for every worker to end on its own (a backend that is gone).
    pub async fn join(self) {
        for task in self.tasks {
            task.await.expect("worker ends cleanly");
        }
    }
}

/// Claims and completes until stopped, or until the backend is unavailable
/// (a crash), journaling every step. The claim is never cut short, so
/// every claim that committed is journaled.
async fn work(backend: Arc<dyn EngineBackend>, name: String, journal: Arc<Journal>, stop: Signal) {
    let req = ClaimRequest::new([LANE], name);
    while !stop.is_triggered() {
        let claimed = match backend.claim_wait(&req, Duration::from_millis(100)).await {
            Ok(claimed) => claimed,
            Err(error) => {
                assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
                return;
            }
        };
        for job in claimed {
            let node = job.node_key.clone().unwrap_or_default();
            let entry = |event| Entry {
                id: job.handle.execution_id,
                node: node.clone(),
                attempt: job.handle.attempt,
                epoch: job.handle.lease_epoch,
                event,
                at: Instant::now(),
            };
            journal.push(entry(Event::Claimed));
            let result = JsonText::from_value(&node);
            match backend.complete(&job.handle, result).await {
                Ok(_) => journal.push(entry(Event::Completed)),
                Err(error) => {
                    journal.push(entry(Event::Refused(error.kind())));
                    if error.kind() == ErrorKind::Unavailable {
                        return;
                    }
                }
            }
        }
    }
}

/// Waits (in real time, up to `within`) until the flow is terminal.
pub async fn wait_for_flow(
    backend: &dyn EngineBackend,
    flow: FlowId,
    within: Duration,
) -> FlowView {
    let started = Instant::now();
    loop {
        let view = backend.get_flow(flow).await.expect("get flow");
        if view.state.is_terminal() {
            return view;
        }
        assert!(
            started.elapsed() < within,
            "flow still {:?} after {within:?}: {:?}",
            view.state,
            view.nodes
                .iter()
                .map(|n| (&n.key, n.state))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts the flow completed with every node completed.
pub fn assert_completed(view: &FlowView) {
    assert_eq!(view.state, FlowState::Completed, "{view:?}");
    for node in &view.nodes {
        assert_eq!(node.state, ff_core::State::Completed, "node {}", node.key);
    }
}
