//! `FlowCommands` (from which `ff_core` derives `FlowOps`), the flow reads
//! and the flow scans of maintenance: the `ff_core::cascade` algorithms
//! over [`FlowTxn`] (in `flow_txn`), inside one write command (one
//! transaction).

use async_trait::async_trait;
use rusqlite::{params, Connection};

use ff_core::cascade::{self, CascadeReport};
use ff_core::flow::{FlowFilter, FlowState, FlowSummary, FlowView, NodeView};
use ff_core::{CompletionPayload, EngineError, FlowCommand, FlowCommands, FlowId, FlowScope, Page};

use crate::command::WriteCtx;
use crate::flow_txn::{from_json, load_flow, query_edges, FlowTxn, EDGES};
use crate::rows;
use crate::{SqlResult, SqliteBackend};

impl SqliteBackend {
    /// Runs a cascade: ahead of the writer's queue when it is `urgent` (it
    /// cascades a flow member, whose children wait on it: that wait is
    /// promotion lag), in turn otherwise (a solo execution's entry only
    /// needs marking dispatched, and jumping the queue would only delay the
    /// claims and completes behind it).
    async fn cascade_command<T, F>(&self, urgent: bool, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, EngineError> + Send + 'static,
    {
        if urgent {
            self.inner.writer.write_urgent(f).await
        } else {
            self.inner.writer.write(f).await
        }
    }

    /// Decides blocked flow nodes whose parents all finished `age` ago or more.
    pub(crate) async fn reconcile_blocked_nodes(
        &self,
        age: ff_core::Millis,
        limit: u32,
    ) -> Result<u32, EngineError> {
        self.inner
            .writer
            .write(move |ctx| {
                let now = ctx.now;
                let txn = &mut FlowTxn::new(ctx);
                let stuck = stuck_blocked(txn.conn(), now.saturating_sub(age), limit)?;
                let mut decided = 0;
                for (flow, key) in stuck {
                    let report = cascade::reconcile_node(txn, flow, &key, now)?;
                    decided += (report.promoted.len() + report.skipped.len()) as u32;
                }
                Ok(decided)
            })
            .await
    }
}

/// Blocked flow nodes none of whose parents is unfinished or finished
/// after `cutoff`.
fn stuck_blocked(
    conn: &Connection,
    cutoff: ff_core::Millis,
    limit: u32,
) -> Result<Vec<(FlowId, String)>, EngineError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT e.flow_id, e.node_key FROM executions e \
             WHERE e.state = 'blocked' AND e.flow_id IS NOT NULL AND NOT EXISTS ( \
               SELECT 1 FROM flow_edges g \
               JOIN flow_nodes n ON n.flow_id = g.flow_id AND n.key = g.from_key \
               JOIN executions p ON p.id = n.execution_id \
               WHERE g.flow_id = e.flow_id AND g.to_key = e.node_key \
                 AND (p.state NOT IN ('completed', 'failed', 'cancelled', 'skipped') \
                      OR p.finished_at > ?1)) \
             LIMIT ?2",
        )
        .db()?;
    let mut rows = stmt.query(params![cutoff, limit]).db()?;
    let mut stuck = Vec::new();
    while let Some(row) = rows.next().db()? {
        let flow: Vec<u8> = row.get(0).db()?;
        stuck.push((FlowId::from_slice(&flow)?, row.get(1).db()?));
    }
    Ok(stuck)
}

/// A flow with its nodes' states, read in one go.
pub(crate) fn flow_view(conn: &Connection, id: FlowId) -> Result<FlowView, EngineError> {
    let record = load_flow(conn, id)?.ok_or_else(|| EngineError::NotFound {
        entity: "flow",
        id: id.to_string(),
    })?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT n.key, n.execution_id, n.join_spec, e.state FROM flow_nodes n \
             JOIN executions e ON e.id = n.execution_id WHERE n.flow_id = ?1 ORDER BY n.position",
        )
        .db()?;
    let mut rows = stmt.query([&id.as_bytes()[..]]).db()?;
    let mut nodes = Vec::new();
    while let Some(row) = rows.next().db()? {
        let join: String = row.get(2).db()?;
        let state: String = row.get(3).db()?;
        nodes.push(NodeView {
            key: row.get(0).db()?,
            execution_id: rows::read_id(row, 1)?,
            join: from_json(&join)?,
            state: state.parse()?,
        });
    }
    Ok(FlowView::new(
        record,
        nodes,
        query_edges(conn, EDGES, id, None)?,
    ))
}

/// A page of flows; the state is derived from member counts per flow.
pub(crate) fn flow_page(
    conn: &Connection,
    filter: &FlowFilter,
    after: Option<FlowId>,
) -> Result<Page<FlowSummary>, EngineError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT f.id, f.namespace, f.fail_fast, f.cancelled, f.created_at, \
               (SELECT COUNT(*) FROM flow_nodes n WHERE n.flow_id = f.id), \
               (SELECT COUNT(*) FROM flow_nodes n JOIN executions e ON e.id = n.execution_id \
                  WHERE n.flow_id = f.id AND e.state NOT IN ('completed', 'failed', 'cancelled', 'skipped')), \
               (SELECT COUNT(*) FROM flow_nodes n JOIN executions e ON e.id = n.execution_id \
                  WHERE n.flow_id = f.id AND e.state = 'failed') \
             FROM flows f WHERE f.namespace = ?1 AND f.id > ?2 ORDER BY f.id",
        )
        .db()?;
    let after = after.map(|id| id.as_bytes().to_vec()).unwrap_or_default();
    let mut rows = stmt.query(params![filter.namespace, after]).db()?;
    let mut items = Vec::new();
    while let Some(row) = rows.next().db()? {
        let id: Vec<u8> = row.get(0).db()?;
        let cancelled: bool = row.get(3).db()?;
        let (open, failed): (i64, i64) = (row.get(6).db()?, row.get(7).db()?);
        let state = match (cancelled, open, failed) {
            (true, _, _) => FlowState::Cancelled,
            (_, open, _) if open > 0 => FlowState::Running,
            (_, _, failed) if failed > 0 => FlowState::Failed,
            _ => FlowState::Completed,
        };
        if filter.state.is_some_and(|s| s != state) {
            continue;
        }
        items.push(FlowSummary {
            id: FlowId::from_slice(&id)?,
            namespace: row.get(1).db()?,
            state,
            fail_fast: row.get(2).db()?,
            created_at: row.get(4).db()?,
            nodes: row.get::<_, i64>(5).db()? as u64,
        });
        if items.len() > filter.limit as usize {
            break;
        }
    }
    Ok(Page::from_overfetch(items, filter.limit))
}

#[async_trait]
impl FlowCommands for SqliteBackend {
    /// One write command; the writer runs a command once.
    async fn flow_command<T: Send + 'static, C: FlowCommand<T>>(
        &self,
        _scope: FlowScope,
        command: C,
    ) -> Result<T, EngineError> {
        self.inner
            .writer
            .write(move |ctx| {
                let now = ctx.now;
                command(&mut FlowTxn::new(ctx), now)
            })
            .await
    }

    async fn cascade_one(&self, payload: &CompletionPayload) -> Result<CascadeReport, EngineError> {
        let payload = payload.clone();
        let urgent = payload.flow_id.is_some();
        self.cascade_command(urgent, move |ctx| {
            let now = ctx.now;
            cascade::cascade(&mut FlowTxn::new(ctx), &payload, now)
        })
        .await
    }

    /// One write command for the whole batch, each cascade in a savepoint of
    /// its own: the burst takes one turn of the writer instead of a queue
    /// position per payload, and one failing cascade undoes only itself.
    async fn cascade_many(
        &self,
        payloads: &[CompletionPayload],
    ) -> Result<Vec<Result<CascadeReport, EngineError>>, EngineError> {
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        let payloads = payloads.to_vec();
        let urgent = payloads.iter().any(|p| p.flow_id.is_some());
        self.cascade_command(urgent, move |ctx| {
            payloads
                .iter()
                .map(|payload| {
                    ctx.step(|ctx| {
                        let now = ctx.now;
                        cascade::cascade(&mut FlowTxn::new(ctx), payload, now)
                    })
                })
                .collect()
        })
        .await
    }
}
