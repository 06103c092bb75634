//! Writing transitions back: every changed execution goes through
//! [`save_batch`], one statement that checks each row's version, writes the
//! state columns and records the outbox entry of each newly terminal
//! execution. One statement means one round trip and one atomic unit even
//! outside a transaction.

use std::collections::HashMap;

use sqlx::{PgExecutor, Row};

use ff_core::{CompletionPayload, EngineError, Execution, ExecutionId, Millis, State};

use crate::migrations::PARTITIONS;
use crate::rows::{self, signed, Stored};
use crate::{PgResult, PostgresBackend, StoreError};

/// The one outbox partition's number.
pub(crate) const PARTITION: u32 = PARTITIONS - 1;

/// An execution a rule changed, and the row version it was read at.
#[derive(Debug)]
pub(crate) struct Change {
    pub(crate) exec: Execution,
    pub(crate) version: i64,
    pub(crate) before: State,
}

impl Change {
    /// The change from `stored` to `exec`, or `None` when the rule left the
    /// execution as it was.
    pub(crate) fn between(stored: &Stored, exec: Execution) -> Option<Self> {
        (stored.exec != exec).then_some(Self {
            exec,
            version: stored.version,
            before: stored.exec.state,
        })
    }

    fn completes(&self) -> bool {
        !self.before.is_terminal() && self.exec.state.is_terminal()
    }
}

/// What a save wrote: the ids whose version still matched, the completions
/// to announce and whether something became claimable.
#[derive(Debug, Default)]
pub(crate) struct Saved {
    pub(crate) written: Vec<ExecutionId>,
    pub(crate) completions: Vec<CompletionPayload>,
    pub(crate) wake: bool,
}

impl Saved {
    /// Whether every change of the batch was written.
    pub(crate) fn all(&self, changes: &[Change]) -> bool {
        self.written.len() == changes.len()
    }
}

const SAVE: &str = "\
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[],
        $6::bigint[], $7::bigint[], $8::bool[], $9::bigint[], $10::bigint[], $11::text[],
        $12::bigint[], $13::bigint[], $14::bigint[], $15::text[], $16::text[], $17::text[],
        $18::text[], $19::text[], $20::text[], $21::bigint[])
    AS t(id, version, state, attempt, lease_epoch, attempts_allowed, releases, reuse_attempt,
        lease_until, attempt_deadline, worker_id, ready_at, updated_at, finished_at, result,
        error, attempts, inputs, outcome, wait, suspend_timeout_at)
), locked AS (
    -- Rows another transaction holds are skipped, never waited for: this
    -- statement cannot join a deadlock, and what it skips goes round again.
    SELECT e.id FROM executions e JOIN input i ON e.id = i.id AND e.version = i.version
    ORDER BY e.id FOR UPDATE OF e SKIP LOCKED
), updated AS (
    UPDATE executions e SET state = i.state, attempt = i.attempt, lease_epoch = i.lease_epoch,
        attempts_allowed = i.attempts_allowed, releases = i.releases,
        reuse_attempt = i.reuse_attempt, lease_until = i.lease_until,
        attempt_deadline = i.attempt_deadline, worker_id = i.worker_id, ready_at = i.ready_at,
        updated_at = i.updated_at, finished_at = i.finished_at, result = i.result,
        error = i.error, attempts = i.attempts, inputs = i.inputs, wait = i.wait,
        suspend_timeout_at = i.suspend_timeout_at, version = e.version + 1
    FROM input i JOIN locked l ON l.id = i.id WHERE e.id = i.id
    RETURNING e.id, e.namespace, e.flow_id, e.node_key, i.outcome, e.attempt
), recorded AS (
    INSERT INTO outbox (execution_id, namespace, flow_id, node_key, outcome, attempt, committed_at)
    SELECT id, namespace, flow_id, node_key, outcome, attempt, $22
    FROM updated WHERE outcome IS NOT NULL
    RETURNING execution_id, seq
)
SELECT u.id, r.seq FROM updated u LEFT JOIN recorded r ON r.execution_id = u.id";

/// Writes `changes` (distinct executions) at `now`. A change whose row moved
/// on since it was read, or that another transaction holds locked, is left
/// out of [`Saved::written`]; callers in a transaction holding the rows'
/// locks treat that as a bug, others re-read and retry.
pub(crate) async fn save_batch<'e>(
    conn: impl PgExecutor<'e>,
    changes: &[Change],
    now: Millis,
) -> Result<Saved, StoreError> {
    if changes.is_empty() {
        return Ok(Saved::default());
    }
    let n = changes.len();
    let mut id = Vec::with_capacity(n);
    let mut version = Vec::with_capacity(n);
    let mut state = Vec::with_capacity(n);
    let mut attempt = Vec::with_capacity(n);
    let mut lease_epoch = Vec::with_capacity(n);
    let mut attempts_allowed = Vec::with_capacity(n);
    let mut releases = Vec::with_capacity(n);
    let mut reuse_attempt = Vec::with_capacity(n);
    let mut lease_until = Vec::with_capacity(n);
    let mut attempt_deadline = Vec::with_capacity(n);
    let mut worker_id = Vec::with_capacity(n);
    let mut ready_at = Vec::with_capacity(n);
    let mut updated_at = Vec::with_capacity(n);
    let mut finished_at = Vec::with_capacity(n);
    let mut result = Vec::with_capacity(n);
    let mut error = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut inputs = Vec::with_capacity(n);
    let mut outcome = Vec::with_capacity(n);
    let mut wait = Vec::with_capacity(n);
    let mut suspend_timeout_at = Vec::with_capacity(n);
    for c in changes {
        let e = &c.exec;
        id.push(*e.id.as_uuid());
        version.push(c.version);
        state.push(e.state.as_str());
        attempt.push(i64::from(e.attempt));
        lease_epoch.push(signed(e.lease_epoch));
        attempts_allowed.push(i64::from(e.attempts_allowed));
        releases.push(i64::from(e.releases));
        reuse_attempt.push(e.reuse_attempt);
        lease_until.push(e.lease_until);
        attempt_deadline.push(e.attempt_deadline);
        worker_id.push(e.worker_id.as_deref());
        ready_at.push(e.ready_at);
        updated_at.push(e.updated_at);
        finished_at.push(e.finished_at);
        result.push(e.result.as_ref().map(|r| r.as_str()));
        error.push(e.error.as_deref());
        attempts.push(rows::to_json(&e.attempts)?);
        inputs.push(e.inputs.as_ref().map(rows::to_json).transpose()?);
        outcome.push(
            c.completes()
                .then(|| e.outcome().map(|o| o.as_str()))
                .flatten(),
        );
        wait.push(e.wait.as_ref().map(rows::to_json).transpose()?);
        suspend_timeout_at.push(ff_core::suspension::rules::timeout_at(e));
    }
    let written = sqlx::query(SAVE)
        .bind(id)
        .bind(version)
        .bind(state)
        .bind(attempt)
        .bind(lease_epoch)
        .bind(attempts_allowed)
        .bind(releases)
        .bind(reuse_attempt)
        .bind(lease_until)
        .bind(attempt_deadline)
        .bind(worker_id)
        .bind(ready_at)
        .bind(updated_at)
        .bind(finished_at)
        .bind(result)
        .bind(error)
        .bind(attempts)
        .bind(inputs)
        .bind(outcome)
        .bind(wait)
        .bind(suspend_timeout_at)
        .bind(now)
        .fetch_all(conn)
        .await?;
    let by_id: HashMap<ExecutionId, &Change> = changes.iter().map(|c| (c.exec.id, c)).collect();
    let mut saved = Saved::default();
    for row in written {
        let id = ExecutionId::from_uuid(row.try_get(0).db()?);
        let seq: Option<i64> = row.try_get(1).db()?;
        saved.written.push(id);
        let Some(change) = by_id.get(&id) else {
            continue;
        };
        saved.wake |= change.exec.state == State::Ready;
        if let Some(seq) = seq {
            let seq = u64::try_from(seq).map_err(EngineError::backend)?;
            if let Some(payload) =
                CompletionPayload::for_execution(&change.exec, now, PARTITION, seq)
            {
                saved.completions.push(payload);
            }
        }
    }
    Ok(saved)
}

impl PostgresBackend {
    /// Counts rows written, for the vacuum's threshold.
    pub(crate) fn note_churn(&self, rows: usize) {
        self.inner
            .churn
            .fetch_add(rows as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Announces what a committed write did.
    pub(crate) fn announce(&self, saved: Saved) {
        self.note_churn(saved.written.len());
        if saved.wake {
            self.inner.work.bump();
        }
        self.inner.completions.publish_local(saved.completions);
    }
}
