//! `MaintenanceOps`: the bounded scans the engine drives. Each scan is one
//! transaction: SQL locks at most `limit` due executions through a partial
//! index (skipping rows someone else holds), the `ff_core` rule decides, and
//! the changed rows are written back in one statement.

use async_trait::async_trait;

use ff_core::suspension::rules;

use ff_core::{
    lease, lifecycle, CompletionPayload, EngineError, Execution, MaintenanceOps, Millis,
};

use crate::listener::{outbox_columns, read_payload};
use crate::rows::{self, select_stored};
use crate::write::{self, Change};
use crate::{PgResult, PostgresBackend};

/// Running executions whose lease or attempt timeout has passed: one arm per
/// partial index.
const LAPSED: &str = concat!(
    select_stored!(),
    " WHERE id IN (\
       (SELECT id FROM executions WHERE state = 'running' AND lease_until <= $1 LIMIT $2) \
       UNION \
       (SELECT id FROM executions WHERE state = 'running' AND attempt_deadline IS NOT NULL \
         AND attempt_deadline <= $1 LIMIT $2)) \
     LIMIT $2 FOR UPDATE SKIP LOCKED"
);

/// Scheduled executions whose time has come, earliest first.
const DUE_SCHEDULED: &str = concat!(
    select_stored!(),
    " WHERE state = 'scheduled' AND ready_at <= $1 ORDER BY ready_at LIMIT $2 \
     FOR UPDATE SKIP LOCKED"
);

/// Non-terminal executions past their deadline, earliest first.
const PAST_DEADLINE: &str = concat!(
    select_stored!(),
    " WHERE deadline IS NOT NULL \
       AND state NOT IN ('completed', 'failed', 'cancelled', 'skipped') \
       AND deadline <= $1 ORDER BY deadline LIMIT $2 FOR UPDATE SKIP LOCKED"
);

/// Suspended executions whose suspension timeout has passed, earliest first.
const TIMED_OUT: &str = concat!(
    select_stored!(),
    " WHERE state = 'suspended' AND suspend_timeout_at IS NOT NULL \
       AND suspend_timeout_at <= $1 ORDER BY suspend_timeout_at LIMIT $2 \
     FOR UPDATE SKIP LOCKED"
);

#[async_trait]
impl MaintenanceOps for PostgresBackend {
    async fn expire_leases(&self, limit: u32) -> Result<u32, EngineError> {
        self.scan(LAPSED, limit, lease::expire_if_lapsed).await
    }

    async fn promote_scheduled(&self, limit: u32) -> Result<u32, EngineError> {
        self.scan(DUE_SCHEDULED, limit, lifecycle::promote_scheduled)
            .await
    }

    async fn expire_deadlines(&self, limit: u32) -> Result<u32, EngineError> {
        self.scan(PAST_DEADLINE, limit, lifecycle::expire_deadline)
            .await
    }

    async fn expire_suspensions(&self, limit: u32) -> Result<u32, EngineError> {
        self.scan(TIMED_OUT, limit, rules::time_out).await
    }

    async fn undispatched_completions(
        &self,
        older_than_ms: u64,
        limit: u32,
    ) -> Result<Vec<CompletionPayload>, EngineError> {
        let cutoff = self.cutoff(older_than_ms);
        let rows = sqlx::query(concat!(
            outbox_columns!(),
            " WHERE dispatched_at IS NULL AND committed_at <= $1 ORDER BY seq LIMIT $2"
        ))
        .bind(cutoff)
        .bind(i64::from(limit))
        .fetch_all(&self.inner.pool)
        .await
        .db()?;
        rows.iter().map(read_payload).collect()
    }

    async fn reconcile_blocked(&self, older_than_ms: u64, limit: u32) -> Result<u32, EngineError> {
        let cutoff = self.cutoff(older_than_ms);
        self.reconcile_blocked_nodes(cutoff, limit).await
    }

    async fn trim_outbox(&self, older_than_ms: u64, limit: u32) -> Result<u32, EngineError> {
        let cutoff = self.cutoff(older_than_ms);
        let deleted = sqlx::query(
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox \
             WHERE dispatched_at IS NOT NULL AND committed_at <= $1 ORDER BY seq LIMIT $2)",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .execute(&self.inner.pool)
        .await
        .db()?;
        Ok(u32::try_from(deleted.rows_affected()).unwrap_or(u32::MAX))
    }
}

impl PostgresBackend {
    /// `now` less `age` milliseconds.
    fn cutoff(&self, age: u64) -> Millis {
        let age = Millis::try_from(age).unwrap_or(Millis::MAX);
        self.now().saturating_sub(age)
    }

    /// Locks up to `limit` executions with `sql` (`$1` = now, `$2` = limit),
    /// applies `rule` to each and writes those it changed; returns how many.
    async fn scan<F>(&self, sql: &'static str, limit: u32, rule: F) -> Result<u32, EngineError>
    where
        F: Fn(&mut Execution, Millis) -> bool + Send,
    {
        if limit == 0 {
            return Ok(0);
        }
        let mut tx = self.inner.pool.begin().await.db()?;
        let now = self.now();
        let due = sqlx::query(sql)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .db()?;
        let mut changes = Vec::new();
        for row in &due {
            let stored = rows::read_stored(row)?;
            let mut exec = stored.exec.clone();
            if rule(&mut exec, now) {
                changes.extend(Change::between(&stored, exec));
            }
        }
        let saved = write::save_batch(&mut *tx, &changes, now).await?;
        if !saved.all(&changes) {
            return Err(EngineError::backend(
                "a locked execution changed during a scan",
            ));
        }
        tx.commit().await.db()?;
        let changed = u32::try_from(saved.written.len()).unwrap_or(u32::MAX);
        self.announce(saved);
        Ok(changed)
    }
}
