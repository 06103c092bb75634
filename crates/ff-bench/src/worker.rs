//! The benchmark's in-process workers: claim loops that complete every
//! execution they get with a no-op handler, counting completions so a
//! scenario can wait for a target, and telling an optional observer when
//! each claim answered (for the latency scenarios).
//!
//! Like `ff demo`'s workers, each loop runs a claimed batch in its own task
//! while it claims the next, so the backend always has a claim queued behind
//! the current batch's completions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use ff_core::{ClaimRequest, Claimed, EngineBackend, JsonText};
use ff_engine::shutdown::{self, Signal, Trigger};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// How long an idle claim waits for work; also bounds how long stopping an
/// idle pool takes.
const CLAIM_WAIT: Duration = Duration::from_millis(250);
/// Claimed batches one loop runs at once.
const BATCHES_IN_FLIGHT: usize = 2;

/// Sees every non-empty claim: the executions, when the call was made and
/// when it answered.
pub type ClaimObserver = Arc<dyn Fn(&[Claimed], Instant, Instant) + Send + Sync>;

/// Completions so far, and a way to wait for a number of them.
#[derive(Debug, Default)]
pub struct Tally {
    completed: AtomicU64,
    errors: AtomicU64,
    changed: Notify,
}

impl Tally {
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    fn add(&self, completed: u64, errors: u64) {
        self.completed.fetch_add(completed, Ordering::Relaxed);
        self.errors.fetch_add(errors, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Waits until `target` completions are counted. Fails when no
    /// completion arrives for `stall` (a stuck run should end, not hang).
    pub async fn wait_for(&self, target: u64, stall: Duration) -> anyhow::Result<()> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let done = self.completed();
            if done >= target {
                return Ok(());
            }
            if tokio::time::timeout(stall, changed).await.is_err() {
                bail!(
                    "stalled: {done} of {target} executions completed, none in the last {} s ({} worker errors)",
                    stall.as_secs(),
                    self.errors()
                );
            }
        }
    }
}

/// A running pool of claim loops on one lane.
#[derive(Debug)]
pub struct Pool {
    pub tally: Arc<Tally>,
    stop: Trigger,
    loops: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `workers` loops claiming up to `batch` at a time from `lane`.
    pub fn start(
        backend: Arc<dyn EngineBackend>,
        lane: &str,
        workers: u32,
        batch: u32,
        observer: Option<ClaimObserver>,
    ) -> Self {
        let tally = Arc::new(Tally::default());
        let (stop, signal) = shutdown::channel();
        let loops = (0..workers)
            .map(|i| {
                let request = ClaimRequest::new([lane], format!("bench-{i}")).max(batch);
                tokio::spawn(claim_loop(
                    backend.clone(),
                    request,
                    tally.clone(),
                    observer.clone(),
                    signal.clone(),
                ))
            })
            .collect();
        Self { tally, stop, loops }
    }

    /// Stops claiming and waits for the loops (and their batches) to end.
    pub async fn stop(self) {
        self.stop.trigger();
        for handle in self.loops {
            if let Err(error) = handle.await {
                tracing::error!(%error, "a bench worker ended abnormally");
            }
        }
    }
}

async fn claim_loop(
    backend: Arc<dyn EngineBackend>,
    request: ClaimRequest,
    tally: Arc<Tally>,
    observer: Option<ClaimObserver>,
    stop: Signal,
) {
    let mut running = JoinSet::new();
    while !stop.is_triggered() {
        while running.len() >= BATCHES_IN_FLIGHT {
            running.join_next().await;
        }
        let called = Instant::now();
        match backend.claim_wait(&request, CLAIM_WAIT).await {
            Ok(jobs) if jobs.is_empty() => {}
            Ok(jobs) => {
                if let Some(observe) = &observer {
                    observe(&jobs, called, Instant::now());
                }
                let (backend, tally) = (backend.clone(), tally.clone());
                running.spawn(async move { complete_all(&*backend, jobs, &tally).await });
            }
            Err(error) => {
                tally.add(0, 1);
                tracing::warn!(%error, "claim failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    while running.join_next().await.is_some() {}
}

/// Completes each execution with its own call, all at once, so the writer
/// folds them into one group commit.
async fn complete_all(backend: &dyn EngineBackend, jobs: Vec<Claimed>, tally: &Tally) {
    let calls = jobs
        .iter()
        .map(|job| backend.complete(&job.handle, JsonText::null()));
    let answers = futures::future::join_all(calls).await;
    let ok = answers.iter().filter(|a| a.is_ok()).count() as u64;
    if let Some(Err(error)) = answers.iter().find(|a| a.is_err()) {
        tracing::warn!(%error, "complete failed");
    }
    tally.add(ok, answers.len() as u64 - ok);
}
