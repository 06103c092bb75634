//! `ReadOps`: lookups, lists and counts, each one statement on the pool.

use async_trait::async_trait;
use sqlx::Row;

use ff_core::flow::{FlowFilter, FlowSummary, FlowView};
use ff_core::{
    BackendDescription, EngineError, Execution, ExecutionId, FlowId, LaneStateCount, ListFilter,
    Page, ReadOps, State,
};

use crate::rows::{self, select_stored};
use crate::{PgResult, PostgresBackend};

/// A page of a namespace in id order after a cursor. A `NULL` filter
/// parameter means "any"; the tag filter matches the key exactly, whatever
/// characters it holds.
const LIST: &str = concat!(
    select_stored!(),
    " WHERE namespace = $1 AND ($2::uuid IS NULL OR id > $2) \
       AND ($3::text IS NULL OR state = $3) \
       AND ($4::text IS NULL OR lane = $4) \
       AND ($5::text IS NULL OR kind = $5) \
       AND ($6::text IS NULL OR (tags::jsonb) ->> $6 = $7) \
     ORDER BY id LIMIT $8"
);

/// Claimable executions of a lane that a claim takes before one of
/// priority $3, ready at $4, id $5, at $6 (the claim order of `leases`).
const AHEAD: &str = "SELECT count(*) FROM executions \
     WHERE namespace = $1 AND lane = $2 AND state IN ('ready', 'scheduled') \
       AND ready_at <= $6 AND (deadline IS NULL OR deadline > $6) \
       AND (priority > $3 OR (priority = $3 AND (ready_at < $4 OR (ready_at = $4 AND id < $5))))";

#[async_trait]
impl ReadOps for PostgresBackend {
    async fn count_ahead(&self, exec: &Execution) -> Result<u64, EngineError> {
        let count: i64 = sqlx::query_scalar(AHEAD)
            .bind(&exec.namespace)
            .bind(&exec.lane)
            .bind(exec.priority)
            .bind(exec.ready_at)
            .bind(exec.id.as_uuid())
            .bind(self.now())
            .fetch_one(&self.inner.pool)
            .await
            .db()?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn get_execution(&self, id: ExecutionId) -> Result<Execution, EngineError> {
        rows::load(&self.inner.pool, id, false)
            .await?
            .map(|stored| stored.exec)
            .ok_or_else(|| EngineError::execution_not_found(id))
    }

    async fn list_executions(&self, filter: &ListFilter) -> Result<Page<Execution>, EngineError> {
        let after = filter.validate(&self.inner.limits)?;
        let (tag_key, tag_value) = filter.tag.clone().unzip();
        let rows = sqlx::query(LIST)
            .bind(&filter.namespace)
            .bind(after.map(|id| *id.as_uuid()))
            .bind(filter.state.map(State::as_str))
            .bind(&filter.lane)
            .bind(&filter.kind)
            .bind(tag_key)
            .bind(tag_value)
            .bind(i64::from(filter.limit) + 1)
            .fetch_all(&self.inner.pool)
            .await
            .db()?;
        let items = rows
            .iter()
            .map(|row| rows::read_stored(row).map(|s| s.exec))
            .collect::<Result<Vec<_>, _>>()?;
        debug_assert!(
            items.iter().all(|e| filter.matches(e)),
            "list SQL and ListFilter::matches disagree"
        );
        Ok(Page::from_overfetch(items, filter.limit))
    }

    async fn count_by_lane_and_state(
        &self,
        namespace: &str,
    ) -> Result<Vec<LaneStateCount>, EngineError> {
        let rows = sqlx::query(
            "SELECT lane, state, COUNT(*) FROM executions WHERE namespace = $1 \
             GROUP BY lane, state",
        )
        .bind(namespace)
        .fetch_all(&self.inner.pool)
        .await
        .db()?;
        let mut counts = rows
            .iter()
            .map(|row| {
                let state: String = row.try_get(1).db()?;
                let count: i64 = row.try_get(2).db()?;
                Ok(LaneStateCount {
                    lane: row.try_get(0).db()?,
                    state: state.parse()?,
                    count: u64::try_from(count).map_err(EngineError::backend)?,
                })
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        // State order is the model's (blocked .. skipped), not the
        // alphabetical order SQL would give.
        counts.sort();
        Ok(counts)
    }

    async fn get_flow(&self, id: FlowId) -> Result<FlowView, EngineError> {
        crate::flows::flow_view(&self.inner.pool, id).await
    }

    async fn list_flows(&self, filter: &FlowFilter) -> Result<Page<FlowSummary>, EngineError> {
        let after = filter.validate(&self.inner.limits)?;
        crate::flows::flow_page(&self.inner.pool, filter, after).await
    }

    /// The server's version; every session this backend opens commits with
    /// `synchronous_commit=on` (set at connect), so that is the durability.
    async fn describe(&self) -> Result<BackendDescription, EngineError> {
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&self.inner.pool)
            .await
            .db()?;
        Ok(BackendDescription {
            name: "postgres".to_owned(),
            version,
            durability: "synchronous_commit=on".to_owned(),
        })
    }
}
