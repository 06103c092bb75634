//! `MaintenanceOps`: the bounded scans the engine drives. Each is one write
//! command: SQL finds at most `limit` due executions through a partial
//! index, the `ff_core` rule decides, and the changed rows are written back.

use async_trait::async_trait;
use rusqlite::params;

use ff_core::suspension::rules;

use ff_core::{
    lease, lifecycle, CompletionPayload, EngineError, Execution, MaintenanceOps, Millis,
};

use crate::command::WriteCtx;
use crate::completions;
use crate::rows::{self, select_stored, Stamp};
use crate::{SqlResult, SqliteBackend};

/// Running executions whose lease or attempt timeout has passed: one arm per
/// partial index.
const LAPSED: &str = concat!(
    select_stored!(),
    " WHERE id IN (\
       SELECT id FROM executions WHERE state = 'running' AND lease_until <= ?1 \
       UNION \
       SELECT id FROM executions WHERE state = 'running' AND attempt_deadline IS NOT NULL \
         AND attempt_deadline <= ?1 \
     LIMIT ?2)"
);

/// Scheduled executions whose time has come, earliest first.
const DUE_SCHEDULED: &str = concat!(
    select_stored!(),
    " WHERE state = 'scheduled' AND ready_at <= ?1 ORDER BY ready_at LIMIT ?2"
);

/// Non-terminal executions past their deadline, earliest first.
const PAST_DEADLINE: &str = concat!(
    select_stored!(),
    " WHERE deadline IS NOT NULL \
       AND state NOT IN ('completed', 'failed', 'cancelled', 'skipped') \
       AND deadline <= ?1 ORDER BY deadline LIMIT ?2"
);

/// Suspended executions whose suspension timeout has passed, earliest first.
const TIMED_OUT: &str = concat!(
    select_stored!(),
    " WHERE state = 'suspended' AND suspend_timeout_at IS NOT NULL \
       AND suspend_timeout_at <= ?1 ORDER BY suspend_timeout_at LIMIT ?2"
);

#[async_trait]
impl MaintenanceOps for SqliteBackend {
    async fn expire_leases(&self, limit: u32) -> Result<u32, EngineError> {
        scan(self, LAPSED, limit, lease::expire_if_lapsed).await
    }

    async fn promote_scheduled(&self, limit: u32) -> Result<u32, EngineError> {
        scan(self, DUE_SCHEDULED, limit, lifecycle::promote_scheduled).await
    }

    async fn expire_deadlines(&self, limit: u32) -> Result<u32, EngineError> {
        scan(self, PAST_DEADLINE, limit, lifecycle::expire_deadline).await
    }

    async fn expire_suspensions(&self, limit: u32) -> Result<u32, EngineError> {
        scan(self, TIMED_OUT, limit, rules::time_out).await
    }

    async fn undispatched_completions(
        &self,
        older_than_ms: u64,
        limit: u32,
    ) -> Result<Vec<CompletionPayload>, EngineError> {
        let age = Millis::try_from(older_than_ms).unwrap_or(Millis::MAX);
        let cutoff = self.inner.clock.now_ms().saturating_sub(age);
        self.inner
            .readers
            .read(move |conn| completions::undispatched(conn, cutoff, limit))
            .await
    }

    async fn reconcile_blocked(&self, older_than_ms: u64, limit: u32) -> Result<u32, EngineError> {
        let age = Millis::try_from(older_than_ms).unwrap_or(Millis::MAX);
        self.reconcile_blocked_nodes(age, limit).await
    }

    async fn trim_outbox(&self, older_than_ms: u64, limit: u32) -> Result<u32, EngineError> {
        let age = Millis::try_from(older_than_ms).unwrap_or(Millis::MAX);
        self.inner
            .writer
            .write(move |ctx| {
                let cutoff = ctx.now.saturating_sub(age);
                let mut stmt = ctx
                    .conn()
                    .prepare_cached(
                        "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox \
                         WHERE dispatched_at IS NOT NULL AND committed_at <= ?1 ORDER BY seq LIMIT ?2)",
                    )
                    .db()?;
                let deleted = stmt.execute(params![cutoff, limit]).db()?;
                Ok(u32::try_from(deleted).unwrap_or(u32::MAX))
            })
            .await
    }
}

/// Loads up to `limit` executions with `sql` (`?1` = now, `?2` = limit),
/// applies `rule` to each and saves those it changed; returns how many.
async fn scan<F>(
    backend: &SqliteBackend,
    sql: &'static str,
    limit: u32,
    rule: F,
) -> Result<u32, EngineError>
where
    F: Fn(&mut Execution, Millis) -> bool + Send + 'static,
{
    if limit == 0 {
        return Ok(0);
    }
    backend
        .inner
        .writer
        .write(move |ctx| {
            let due = select(ctx, sql, limit)?;
            let mut changed = 0;
            for (mut exec, before) in due {
                if rule(&mut exec, ctx.now) && ctx.save(exec, before)? {
                    changed += 1;
                }
            }
            Ok(changed)
        })
        .await
}

fn select(
    ctx: &WriteCtx<'_>,
    sql: &str,
    limit: u32,
) -> Result<Vec<(Execution, Stamp)>, EngineError> {
    let mut stmt = ctx.conn().prepare_cached(sql).db()?;
    let mut rows = stmt.query(params![ctx.now, limit]).db()?;
    let mut due = Vec::new();
    while let Some(row) = rows.next().db()? {
        due.push(rows::read_stored(row)?);
    }
    Ok(due)
}
