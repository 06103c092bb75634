//! `ReadOps`: lookups, lists and counts, served by the read pool.

use async_trait::async_trait;
use rusqlite::params;

use ff_core::flow::{FlowFilter, FlowSummary, FlowView};
use ff_core::{
    BackendDescription, EngineError, Execution, ExecutionId, FlowId, LaneStateCount, ListFilter,
    Page, ReadOps, State,
};

use crate::rows::{self, columns};
use crate::{SqlResult, SqliteBackend, Synchronous};

/// A page of a namespace in id order after a cursor. A `NULL` filter
/// parameter means "any"; the tag filter matches the key exactly through
/// `json_each`, whatever characters it holds.
const LIST: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM executions WHERE namespace = ?1 AND id > ?2 \
       AND (?3 IS NULL OR state = ?3) \
       AND (?4 IS NULL OR lane = ?4) \
       AND (?5 IS NULL OR kind = ?5) \
       AND (?6 IS NULL OR EXISTS (SELECT 1 FROM json_each(executions.tags) AS t \
                                  WHERE t.key = ?6 AND t.value = ?7)) \
     ORDER BY id LIMIT ?8"
);

/// Claimable executions of a lane that a claim takes before one of
/// priority ?3, ready at ?4, id ?5, at ?6 (the claim order of `leases`).
const AHEAD: &str = "SELECT count(*) FROM executions \
     WHERE namespace = ?1 AND lane = ?2 AND state IN ('ready', 'scheduled') \
       AND ready_at <= ?6 AND (deadline IS NULL OR deadline > ?6) \
       AND (priority > ?3 OR (priority = ?3 AND (ready_at < ?4 OR (ready_at = ?4 AND id < ?5))))";

#[async_trait]
impl ReadOps for SqliteBackend {
    async fn count_ahead(&self, exec: &Execution) -> Result<u64, EngineError> {
        let now = self.inner.clock.now_ms();
        let (namespace, lane) = (exec.namespace.clone(), exec.lane.clone());
        let (priority, ready_at, id) = (exec.priority, exec.ready_at, exec.id);
        self.inner
            .readers
            .read(move |conn| {
                let count: i64 = conn
                    .prepare_cached(AHEAD)
                    .db()?
                    .query_row(
                        params![namespace, lane, priority, ready_at, &id.as_bytes()[..], now],
                        |row| row.get(0),
                    )
                    .db()?;
                Ok(u64::try_from(count).unwrap_or(0))
            })
            .await
    }

    async fn get_execution(&self, id: ExecutionId) -> Result<Execution, EngineError> {
        self.inner
            .readers
            .read(move |conn| {
                rows::load_stored(conn, id)?
                    .map(|(exec, _)| exec)
                    .ok_or_else(|| EngineError::execution_not_found(id))
            })
            .await
    }

    async fn list_executions(&self, filter: &ListFilter) -> Result<Page<Execution>, EngineError> {
        let after = filter.validate(&self.inner.limits)?;
        let filter = filter.clone();
        self.inner
            .readers
            .read(move |conn| {
                // The empty blob sorts before every id.
                let after = after.map(|id| id.as_bytes().to_vec()).unwrap_or_default();
                let (tag_key, tag_value) = filter.tag.clone().unzip();
                let mut stmt = conn.prepare_cached(LIST).db()?;
                let mut rows = stmt
                    .query(params![
                        filter.namespace,
                        after,
                        filter.state.map(State::as_str),
                        filter.lane,
                        filter.kind,
                        tag_key,
                        tag_value,
                        i64::from(filter.limit) + 1,
                    ])
                    .db()?;
                let mut items = Vec::new();
                while let Some(row) = rows.next().db()? {
                    let exec = rows::read_execution(row)?;
                    debug_assert!(
                        filter.matches(&exec),
                        "list SQL and ListFilter::matches disagree"
                    );
                    items.push(exec);
                }
                Ok(Page::from_overfetch(items, filter.limit))
            })
            .await
    }

    async fn count_by_lane_and_state(
        &self,
        namespace: &str,
    ) -> Result<Vec<LaneStateCount>, EngineError> {
        let namespace = namespace.to_owned();
        self.inner
            .readers
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT lane, state, COUNT(*) FROM executions WHERE namespace = ?1 \
                         GROUP BY lane, state",
                    )
                    .db()?;
                let mut rows = stmt.query([&namespace]).db()?;
                let mut counts = Vec::new();
                while let Some(row) = rows.next().db()? {
                    let state: String = row.get(1).db()?;
                    counts.push(LaneStateCount {
                        lane: row.get(0).db()?,
                        state: state.parse()?,
                        count: row.get(2).db()?,
                    });
                }
                // State order is the model's (blocked .. skipped), not the
                // alphabetical order SQL would give.
                counts.sort();
                Ok(counts)
            })
            .await
    }

    async fn get_flow(&self, id: FlowId) -> Result<FlowView, EngineError> {
        self.inner
            .readers
            .read(move |conn| crate::flows::flow_view(conn, id))
            .await
    }

    async fn list_flows(&self, filter: &FlowFilter) -> Result<Page<FlowSummary>, EngineError> {
        let after = filter.validate(&self.inner.limits)?;
        let filter = filter.clone();
        self.inner
            .readers
            .read(move |conn| crate::flows::flow_page(conn, &filter, after))
            .await
    }

    /// The linked SQLite library and the `synchronous` level acknowledged
    /// writes wait for; no I/O.
    async fn describe(&self) -> Result<BackendDescription, EngineError> {
        let durability = match self.inner.synchronous {
            Synchronous::Full => "full",
            Synchronous::Normal => "normal",
        };
        Ok(BackendDescription {
            name: "sqlite".to_owned(),
            version: rusqlite::version().to_owned(),
            durability: durability.to_owned(),
        })
    }
}
