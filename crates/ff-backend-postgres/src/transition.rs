//! The single-execution transition (complete, fail, renew, release,
//! cancel, requeue): load one execution, apply a rule, persist what
//! changed, group-committed.
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

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use tokio::sync::oneshot;

use ff_core::{EngineError, Execution, ExecutionId, Millis};

use crate::queue::take_batch;
use crate::rows::{self, select_stored};
use crate::write::{self, Change};
use crate::{PostgresBackend, StoreError};

/// Transitions one round reads and writes at most.
const MAX_BATCH: usize = 512;

/// Rounds in flight at once: while one waits on its commit the next reads.
pub(crate) const COMMITTERS: usize = 4;

/// Rounds a transition goes before it gives up on a row that keeps
/// changing.
const MAX_ROUNDS: u32 = 64;

/// One queued transition, its answer type behind the trait so one queue
/// carries every rule.
pub(crate) trait Job: Send {
    fn id(&self) -> ExecutionId;
    /// Runs the rule on `exec`, keeping its answer until the round settles.
    /// A rule that panics fails its own caller, not the committer.
    fn apply(&mut self, exec: &mut Execution, now: Millis) -> Result<(), EngineError>;
    /// Rounds this transition has gone so far, counting this one.
    fn next_round(&mut self) -> u32;
    /// Answers the caller with what the last run of the rule said.
    fn answer(self: Box<Self>);
    /// Answers the caller with `err` instead.
    fn fail(self: Box<Self>, err: EngineError);
}

/// The queue the committers share.
pub(crate) type Queue = crate::queue::Queue<Box<dyn Job>>;

struct Transition<T, F> {
    id: ExecutionId,
    rule: F,
    answer: Option<T>,
    rounds: u32,
    reply: oneshot::Sender<Result<T, EngineError>>,
}

impl<T, F> Job for Transition<T, F>
where
    T: Send + 'static,
    F: FnMut(&mut Execution, Millis) -> T + Send + 'static,
{
    fn id(&self) -> ExecutionId {
        self.id
    }

    fn apply(&mut self, exec: &mut Execution, now: Millis) -> Result<(), EngineError> {
        let answer = catch_unwind(AssertUnwindSafe(|| (self.rule)(exec, now))).map_err(|_| {
            EngineError::backend(format!("the rule for execution {} panicked", self.id))
        })?;
        self.answer = Some(answer);
        Ok(())
    }

    fn next_round(&mut self) -> u32 {
        self.rounds += 1;
        self.rounds
    }

    fn answer(self: Box<Self>) {
        let answer = self
            .answer
            .ok_or_else(|| EngineError::backend("a transition was answered before its rule ran"));
        let _ = self.reply.send(answer);
    }

    fn fail(self: Box<Self>, err: EngineError) {
        let _ = self.reply.send(Err(err));
    }
}

/// Runs `rule` on execution `id` (unknown id → `NotFound`) in the next
/// round and persists whatever it changed, even when it answers with an
/// error, as after a lease expiry the rule applied itself.
pub(crate) async fn transition<T, F>(
    backend: &PostgresBackend,
    id: ExecutionId,
    rule: F,
) -> Result<T, EngineError>
where
    T: Send + 'static,
    F: FnMut(&mut Execution, Millis) -> T + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job = Transition {
        id,
        rule,
        answer: None,
        rounds: 0,
        reply,
    };
    backend
        .inner
        .jobs
        .send(Box::new(job))
        .map_err(|_| EngineError::backend("the backend is closed"))?;
    answer
        .await
        .map_err(|_| EngineError::backend("the backend closed during a transition"))?
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
    async fn round(&self, batch: Vec<Box<dyn Job>>) -> Vec<Box<dyn Job>> {
        // One job per execution per round: a later one must see the row the
        // earlier one wrote.
        let mut seen = HashSet::new();
        let (now_jobs, later): (Vec<_>, Vec<_>) =
            batch.into_iter().partition(|job| seen.insert(job.id()));
        let ids: Vec<uuid::Uuid> = now_jobs.iter().map(|j| *j.id().as_uuid()).collect();
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
            let Some(row) = stored.remove(&job.id()) else {
                let id = job.id();
                job.fail(EngineError::execution_not_found(id));
                continue;
            };
            let mut exec = row.exec.clone();
            if let Err(err) = job.apply(&mut exec, now) {
                job.fail(err);
                continue;
            }
            match Change::between(&row, exec) {
                Some(change) => {
                    changes.push(change);
                    pending.push(job);
                }
                None => job.answer(),
            }
        }
        let saved = match write::save_batch(&self.inner.pool, &changes, now).await {
            Ok(saved) => saved,
            Err(err) => return settle_failed(pending, later, err),
        };
        let written: HashSet<ExecutionId> = saved.written.iter().copied().collect();
        let mut again = later;
        for mut job in pending {
            if written.contains(&job.id()) {
                job.answer();
            } else if job.next_round() >= MAX_ROUNDS {
                let id = job.id();
                job.fail(EngineError::backend(format!(
                    "execution {id} kept changing; gave up after {MAX_ROUNDS} attempts"
                )));
            } else {
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
fn settle_failed(
    jobs: Vec<Box<dyn Job>>,
    mut later: Vec<Box<dyn Job>>,
    err: StoreError,
) -> Vec<Box<dyn Job>> {
    if err.is_retryable() {
        later.extend(jobs.into_iter().map(|mut job| {
            job.next_round();
            job
        }));
        return later;
    }
    let err = EngineError::from(err);
    for job in jobs {
        job.fail(err.for_another_caller());
    }
    later
}
