//! The demo's in-process workers: each claims up to a batch of executions,
//! runs their handlers concurrently and reports every outcome, so the
//! backend's group commit folds many completions into one transaction.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ff_core::{ClaimRequest, Claimed, EngineBackend, EngineError, Failure, JsonText, State};
use ff_engine::shutdown::Signal;
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use super::journal::Journal;
use super::LANE;

/// How long one claim waits for work. Claims are never cancelled (a claim
/// dropped after the backend granted it would strand its leases until they
/// expire), so this also bounds how long shutdown waits for an idle worker.
const CLAIM_WAIT: Duration = Duration::from_millis(250);
/// Claimed batches one claim loop runs at once.
const BATCHES_IN_FLIGHT: usize = 2;

/// Which executions the handler fails, by the index in their payload.
#[derive(Debug, Clone, Copy)]
pub struct FailurePlan {
    /// Every `fail_every`-th execution fails its first attempt (retryably)
    /// and succeeds on the retry; 0 turns failures off.
    pub fail_every: u64,
}

impl FailurePlan {
    /// Execution 0 fails every attempt, so the demo shows retries running out.
    const ALWAYS_FAILS: u64 = 0;

    fn verdict(&self, job: &Claimed) -> Verdict {
        let Some(index) = payload_index(&job.payload) else {
            return Verdict::Fail(Failure::permanent("the payload carries no index"));
        };
        if self.fail_every == 0 {
            Verdict::Complete
        } else if index == Self::ALWAYS_FAILS {
            Verdict::Fail(Failure::retryable("fails on every attempt"))
        } else if index % self.fail_every == self.fail_every - 1 && job.handle.attempt == 1 {
            Verdict::Fail(Failure::retryable("transient failure; the retry succeeds"))
        } else {
            Verdict::Complete
        }
    }
}

enum Verdict {
    Complete,
    Fail(Failure),
}

fn payload_index(payload: &JsonText) -> Option<u64> {
    payload
        .decode::<serde_json::Value>()
        .ok()?
        .get("i")?
        .as_u64()
}

/// What the workers did in this process.
#[derive(Debug, Default)]
pub struct WorkerTally {
    pub attempts: AtomicU64,
    pub completed: AtomicU64,
    pub retries_scheduled: AtomicU64,
    pub failed: AtomicU64,
    /// Calls answered `LeaseLost` or `NotActive`: another outcome won.
    pub fenced: AtomicU64,
    pub errors: AtomicU64,
}

impl WorkerTally {
    /// Executions this process's workers made terminal.
    pub fn terminal(&self) -> u64 {
        self.completed.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

/// Everything a worker needs, shared by all of them.
#[derive(Debug)]
pub struct WorkerPool {
    pub backend: Arc<dyn EngineBackend>,
    pub plan: FailurePlan,
    /// Simulated work per attempt; holds the lease meanwhile.
    pub work: Duration,
    pub journal: Option<Journal>,
    /// Most executions per claim.
    pub batch: u32,
    pub tally: WorkerTally,
}

impl WorkerPool {
    /// Starts `workers` claim loops; each ends after `shutdown` once its
    /// running handlers have reported.
    pub fn spawn(self: &Arc<Self>, workers: usize, shutdown: &Signal) -> Vec<JoinHandle<()>> {
        (0..workers)
            .map(|index| {
                let span = tracing::info_span!("worker", index);
                tokio::spawn(
                    self.clone()
                        .claim_loop(index, shutdown.clone())
                        .instrument(span),
                )
            })
            .collect()
    }

    /// Claims batch after batch. A claimed batch runs in its own task while
    /// the loop claims the next one, so the backend always has the next
    /// claim queued behind the current batch's reports instead of idling
    /// between them; at most [`BATCHES_IN_FLIGHT`] batches run per loop.
    async fn claim_loop(self: Arc<Self>, index: usize, mut shutdown: Signal) {
        let request = ClaimRequest::new([LANE], format!("demo-worker-{index}")).max(self.batch);
        let mut running = JoinSet::new();
        let mut backoff = Duration::from_millis(50);
        while !shutdown.is_triggered() {
            while running.len() >= BATCHES_IN_FLIGHT {
                reap(running.join_next().await);
            }
            match self.backend.claim_wait(&request, CLAIM_WAIT).await {
                Ok(jobs) if jobs.is_empty() => {}
                Ok(jobs) => {
                    backoff = Duration::from_millis(50);
                    let (pool, signal) = (self.clone(), shutdown.clone());
                    running.spawn(
                        async move {
                            let attempts =
                                jobs.into_iter().map(|job| pool.run_attempt(job, &signal));
                            futures::future::join_all(attempts).await;
                        }
                        .in_current_span(),
                    );
                }
                Err(error) => {
                    self.tally.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "claim failed; backing off");
                    if !shutdown.sleep(backoff).await {
                        break;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        while let Some(ended) = running.join_next().await {
            reap(Some(ended));
        }
    }

    /// Runs one claimed attempt and reports it. An attempt whose handler has
    /// not started when shutdown arrives is released instead, so it does not
    /// wait out its lease.
    async fn run_attempt(&self, job: Claimed, shutdown: &Signal) {
        let handle = &job.handle;
        if shutdown.is_triggered() {
            if let Err(error) = self.backend.release(handle).await {
                tracing::debug!(%error, execution_id = %handle.execution_id, "release on shutdown failed");
            }
            return;
        }
        self.tally.attempts.fetch_add(1, Ordering::Relaxed);
        let start_ms = now_ms();
        if let Some(journal) = &self.journal {
            if let Err(error) = journal.start(handle, start_ms).await {
                tracing::error!(%error, "journal write failed");
            }
        }
        if !self.work.is_zero() {
            tokio::time::sleep(self.work).await;
        }
        let (op, answer) = match self.plan.verdict(&job) {
            Verdict::Complete => {
                let answer = self.backend.complete(handle, JsonText::null()).await;
                if answer.is_ok() {
                    self.tally.completed.fetch_add(1, Ordering::Relaxed);
                }
                ("complete", answer.map(|_| ()))
            }
            Verdict::Fail(failure) => {
                let answer = self.backend.fail(handle, failure).await;
                if let Ok(response) = &answer {
                    let counter = if response.state == State::Failed {
                        &self.tally.failed
                    } else {
                        &self.tally.retries_scheduled
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                ("fail", answer.map(|_| ()))
            }
        };
        let outcome = match &answer {
            Ok(()) => "ok",
            Err(error) => {
                self.note_error(error, op, &handle.execution_id);
                error.kind().code()
            }
        };
        if let Some(journal) = &self.journal {
            if let Err(error) = journal.end(handle, start_ms, now_ms(), op, outcome).await {
                tracing::error!(%error, "journal write failed");
            }
        }
    }

    fn note_error(&self, error: &EngineError, op: &str, id: &ff_core::ExecutionId) {
        use ff_core::ErrorKind::{LeaseLost, NotActive};
        if matches!(error.kind(), LeaseLost | NotActive) {
            self.tally.fenced.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%error, op, execution_id = %id, "fenced off");
        } else {
            // The lease runs out and the execution is retried.
            self.tally.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, op, execution_id = %id, "report failed");
        }
    }
}

/// Logs a batch task that panicked; its leases run out and are retried.
fn reap(ended: Option<Result<(), tokio::task::JoinError>>) {
    if let Some(Err(error)) = ended {
        tracing::error!(%error, "a batch of handlers panicked");
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff_core::{ExecutionId, LeaseHandle, LeaseToken};

    fn job(index: u64, attempt: u32) -> Claimed {
        Claimed {
            handle: LeaseHandle {
                execution_id: ExecutionId::new(),
                namespace: "default".into(),
                attempt,
                lease_epoch: u64::from(attempt),
                lease_token: LeaseToken::random(),
            },
            namespace: "default".into(),
            lane: LANE.into(),
            kind: "demo.noop".into(),
            payload: JsonText::unchecked(format!("{{\"i\":{index}}}")),
            lease_ms: 1_000,
            lease_until: 0,
            attempt_deadline: None,
            deadline: None,
            flow_id: None,
            node_key: None,
            inputs: None,
            signals: Vec::new(),
        }
    }

    fn fails(plan: FailurePlan, index: u64, attempt: u32) -> bool {
        matches!(plan.verdict(&job(index, attempt)), Verdict::Fail(_))
    }

    #[test]
    fn every_kth_fails_once_and_execution_zero_always() {
        let plan = FailurePlan { fail_every: 10 };
        assert!(
            fails(plan, 9, 1) && !fails(plan, 9, 2),
            "fails once, then succeeds"
        );
        assert!(!fails(plan, 10, 1) && !fails(plan, 5, 1));
        assert!((1..=3).all(|attempt| fails(plan, 0, attempt)));
        let none = FailurePlan { fail_every: 0 };
        assert!(!fails(none, 0, 1) && !fails(none, 9, 1));
    }

    #[test]
    fn a_payload_without_an_index_fails_permanently() {
        let mut bad = job(1, 1);
        bad.payload = JsonText::null();
        let plan = FailurePlan { fail_every: 10 };
        assert!(matches!(plan.verdict(&bad), Verdict::Fail(f) if !f.retryable));
    }
}
