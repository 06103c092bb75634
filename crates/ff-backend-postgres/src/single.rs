//! Single-execution transitions (complete, fail, renew, release, cancel,
//! requeue), group-committed.
//!
//! Callers queue a rule for one execution; a few committer tasks take
//! whatever is queued (up to [`MAX_BATCH`]), read those rows in one
//! statement, apply each rule to its row, and write every change back in one
//! statement that names the row version each rule saw, inserting outbox
//! entries for those that became terminal. That statement is one commit and
//! one WAL flush for the whole batch, and every caller is answered only
//! after it, so no acknowledged write can be lost. A row that changed
//! between the read and the write (another process got there first) goes
//! round again, and its rule decides afresh on what is stored.
//!
//! No lock is held between the read and the write, and nothing waits to
//! fill a batch: an idle system answers one transition in two round trips.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use tokio::sync::oneshot;

use ff_core::{EngineError, Execution, ExecutionId, Millis};

use crate::queue::take_batch;
use crate::rows::{self, select_stored};
use crate::store::{self, Change};
use crate::{PostgresBackend, StoreError};

/// Transitions one round reads and writes at most.
const MAX_BATCH: usize = 512;

/// Rounds in flight at once: while one waits on its commit the next reads.
pub(crate) const COMMITTERS: usize = 4;

/// Rounds a transition goes before it gives up on a row that keeps
/// changing.
const MAX_ROUNDS: u32 = 64;

type Answer = Box<dyn Any + Send>;
type Rule = Box<dyn FnMut(&mut Execution, Millis) -> Answer + Send>;

/// One queued transition.
pub(crate) struct Job {
    id: ExecutionId,
    rule: Rule,
    rounds: u32,
    reply: oneshot::Sender<Result<Answer, EngineError>>,
}

/// The queue the committers share.
pub(crate) type Queue = crate::queue::Queue<Job>;

impl PostgresBackend {
    /// Runs `rule` on execution `id` (unknown id → `NotFound`) and persists
    /// whatever it changed, even when it answers with an error, as after a
    /// lease expiry the rule applied itself.
    #[tracing::instrument(level = "trace", skip_all, fields(%id))]
    pub(crate) async fn transition<T, F>(
        &self,
        id: ExecutionId,
        mut rule: F,
    ) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnMut(&mut Execution, Millis) -> T + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            id,
            rule: Box::new(move |exec, now| Box::new(rule(exec, now)) as Answer),
            rounds: 0,
            reply,
        };
        self.inner
            .jobs
            .send(job)
            .map_err(|_| EngineError::backend("the backend is closed"))?;
        let answer = answer
            .await
            .map_err(|_| EngineError::backend("the backend closed during a transition"))??;
        answer
            .downcast::<T>()
            .map(|t| *t)
            .map_err(|_| EngineError::backend("transition answered with the wrong type"))
    }
}

/// A committer: takes batches off the queue until the queue closes.
pub(crate) async fn commit_loop(backend: std::sync::Weak<crate::Inner>, queue: Queue) {
    while let Some(batch) = take_batch(&queue, MAX_BATCH).await {
        let Some(inner) = backend.upgrade() else {
            return;
        };
        let backend = PostgresBackend { inner };
        let again = backend.round(batch).await;
        for job in again {
            // The queue is open while we hold the backend.
            let _ = backend.inner.jobs.send(job);
        }
    }
}

impl PostgresBackend {
    /// One round: read, apply, write, answer. Returns the jobs whose row
    /// moved on under them, to go round again.
    async fn round(&self, batch: Vec<Job>) -> Vec<Job> {
        // One job per execution per round: a later one must see the row the
        // earlier one wrote.
        let mut seen = HashSet::new();
        let (now_jobs, later): (Vec<Job>, Vec<Job>) =
            batch.into_iter().partition(|job| seen.insert(job.id));
        let ids: Vec<uuid::Uuid> = now_jobs.iter().map(|j| *j.id.as_uuid()).collect();
        let loaded = sqlx::query(concat!(select_stored!(), " WHERE id = ANY($1)"))
            .bind(ids)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(StoreError::from)
            .and_then(|rows| {
                rows.iter()
                    .map(|row| rows::read_stored(row).map(|s| (s.exec.id, s)))
                    .collect::<Result<HashMap<_, _>, _>>()
                    .map_err(StoreError::from)
            });
        let mut stored = match loaded {
            Ok(stored) => stored,
            Err(err) => return settle_failed(now_jobs, later, err),
        };
        let now = self.now();
        let mut changes = Vec::new();
        let mut pending = Vec::new();
        for mut job in now_jobs {
            let Some(row) = stored.remove(&job.id) else {
                let _ = job
                    .reply
                    .send(Err(EngineError::execution_not_found(job.id)));
                continue;
            };
            let mut exec = row.exec.clone();
            // A rule that panics fails its own caller, not the committer.
            let applied = catch_unwind(AssertUnwindSafe(|| (job.rule)(&mut exec, now)));
            let Ok(answer) = applied else {
                let _ = job.reply.send(Err(EngineError::backend(format!(
                    "the rule for execution {} panicked",
                    job.id
                ))));
                continue;
            };
            match Change::between(&row, exec) {
                Some(change) => {
                    changes.push(change);
                    pending.push((job, answer));
                }
                None => {
                    let _ = job.reply.send(Ok(answer));
                }
            }
        }
        let saved = match store::save_batch(&self.inner.pool, &changes, now).await {
            Ok(saved) => saved,
            Err(err) => {
                return settle_failed(
                    pending.into_iter().map(|(job, _)| job).collect(),
                    later,
                    err,
                )
            }
        };
        let written: HashSet<ExecutionId> = saved.written.iter().copied().collect();
        let mut again = later;
        for (mut job, answer) in pending {
            if written.contains(&job.id) {
                let _ = job.reply.send(Ok(answer));
            } else if job.rounds + 1 >= MAX_ROUNDS {
                let _ = job.reply.send(Err(EngineError::backend(format!(
                    "execution {} kept changing; gave up after {MAX_ROUNDS} attempts",
                    job.id
                ))));
            } else {
                job.rounds += 1;
                again.push(job);
            }
        }
        self.announce(saved);
        again
    }
}

/// After a failed statement: a race worth retrying sends `jobs` round
/// again (with `later`); anything else answers each of them with the error,
/// its kind kept.
fn settle_failed(jobs: Vec<Job>, mut later: Vec<Job>, err: StoreError) -> Vec<Job> {
    if err.is_retryable() {
        later.extend(jobs.into_iter().map(|mut job| {
            job.rounds += 1;
            job
        }));
        return later;
    }
    let err = EngineError::from(err);
    for job in jobs {
        let _ = job.reply.send(Err(copy_error(&err)));
    }
    later
}

/// The same failure for another caller: `Unavailable` stays retryable,
/// anything else is a backend failure with the same message.
fn copy_error(err: &EngineError) -> EngineError {
    match err {
        EngineError::Unavailable { message } => EngineError::Unavailable {
            message: message.clone(),
        },
        other => EngineError::backend(other.to_string()),
    }
}
