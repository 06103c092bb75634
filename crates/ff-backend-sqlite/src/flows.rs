//! `FlowOps`, the flow reads, and the flow scans of maintenance: the
//! `ff_core::cascade` algorithms over [`FlowTxn`], this backend's
//! `FlowStore`, inside one write command (one transaction).

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use ff_core::cascade::{self, CascadeReport, FlowCancelResponse, FlowStore, NodesAdded};
use ff_core::flow::{
    EdgeSpec, FlowCreated, FlowEdge, FlowFilter, FlowNode, FlowRecord, FlowSpec, FlowState,
    FlowSummary, FlowView, NodeSpec, NodeView,
};
use ff_core::{
    CompletionPayload, EngineError, Execution, ExecutionId, FlowId, FlowOps, LeaseHandle, Page,
    State,
};

use crate::command::WriteCtx;
use crate::rows::{self, Stamp};
use crate::{SqlResult, SqliteBackend};

/// The flow algorithms' view of one write command. Remembers the stamp of
/// every execution it loaded, so a save updates the right row.
struct FlowTxn<'a, 'c> {
    ctx: &'a mut WriteCtx<'c>,
    stamps: HashMap<ExecutionId, Stamp>,
}

impl<'a, 'c> FlowTxn<'a, 'c> {
    fn new(ctx: &'a mut WriteCtx<'c>) -> Self {
        Self {
            ctx,
            stamps: HashMap::new(),
        }
    }

    fn conn(&self) -> &'c Connection {
        self.ctx.conn()
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, EngineError> {
    serde_json::to_string(value).map_err(EngineError::backend)
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, EngineError> {
    serde_json::from_str(text).map_err(EngineError::backend)
}

fn read_flow(row: &Row<'_>) -> Result<FlowRecord, EngineError> {
    let id: Vec<u8> = row.get(0).db()?;
    Ok(FlowRecord {
        id: FlowId::from_slice(&id)?,
        namespace: row.get(1).db()?,
        idempotency_key: row.get(2).db()?,
        fail_fast: row.get(3).db()?,
        cancelled: row.get(4).db()?,
        created_at: row.get(5).db()?,
        updated_at: row.get(6).db()?,
    })
}

const FLOW_COLUMNS: &str =
    "id, namespace, idempotency_key, fail_fast, cancelled, created_at, updated_at";

fn load_flow(conn: &Connection, id: FlowId) -> Result<Option<FlowRecord>, EngineError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {FLOW_COLUMNS} FROM flows WHERE id = ?1"))
        .db()?;
    let mut rows = stmt.query([&id.as_bytes()[..]]).db()?;
    rows.next().db()?.map(read_flow).transpose()
}

fn read_node(row: &Row<'_>) -> Result<FlowNode, EngineError> {
    let join: String = row.get(2).db()?;
    let hash: i64 = row.get(4).db()?;
    Ok(FlowNode {
        key: row.get(0).db()?,
        execution_id: rows::read_id(row, 1)?,
        join: from_json(&join)?,
        cancel_losers: row.get(3).db()?,
        spec_hash: hash as u64,
    })
}

fn query_nodes(
    conn: &Connection,
    sql: &str,
    flow: FlowId,
    key: Option<&str>,
) -> Result<Vec<FlowNode>, EngineError> {
    let mut stmt = conn.prepare_cached(sql).db()?;
    let mut rows = match key {
        Some(key) => stmt.query(params![&flow.as_bytes()[..], key]).db()?,
        None => stmt.query(params![&flow.as_bytes()[..]]).db()?,
    };
    let mut nodes = Vec::new();
    while let Some(row) = rows.next().db()? {
        nodes.push(read_node(row)?);
    }
    Ok(nodes)
}

const NODES: &str =
    "SELECT key, execution_id, join_spec, cancel_losers, spec_hash FROM flow_nodes \
                     WHERE flow_id = ?1 ORDER BY position";
const NODE: &str = "SELECT key, execution_id, join_spec, cancel_losers, spec_hash FROM flow_nodes \
                    WHERE flow_id = ?1 AND key = ?2";

fn query_edges(
    conn: &Connection,
    sql: &str,
    flow: FlowId,
    key: Option<&str>,
) -> Result<Vec<FlowEdge>, EngineError> {
    let mut stmt = conn.prepare_cached(sql).db()?;
    let mut rows = match key {
        Some(key) => stmt.query(params![&flow.as_bytes()[..], key]).db()?,
        None => stmt.query(params![&flow.as_bytes()[..]]).db()?,
    };
    let mut edges = Vec::new();
    while let Some(row) = rows.next().db()? {
        let condition: String = row.get(2).db()?;
        edges.push(FlowEdge {
            from: row.get(0).db()?,
            to: row.get(1).db()?,
            condition: from_json(&condition)?,
        });
    }
    Ok(edges)
}

const EDGES: &str =
    "SELECT from_key, to_key, condition FROM flow_edges WHERE flow_id = ?1 ORDER BY position";
const EDGES_FROM: &str =
    "SELECT from_key, to_key, condition FROM flow_edges WHERE flow_id = ?1 AND from_key = ?2 ORDER BY position";
const EDGES_INTO: &str =
    "SELECT from_key, to_key, condition FROM flow_edges WHERE flow_id = ?1 AND to_key = ?2 ORDER BY position";

impl FlowStore for FlowTxn<'_, '_> {
    fn execution(&mut self, id: ExecutionId) -> Result<Option<Execution>, EngineError> {
        Ok(rows::load_stored(self.conn(), id)?.map(|(exec, stamp)| {
            self.stamps.insert(id, stamp);
            exec
        }))
    }

    fn insert_execution(&mut self, exec: &Execution) -> Result<(), EngineError> {
        let stamp = self.ctx.insert(exec)?;
        self.stamps.insert(exec.id, stamp);
        Ok(())
    }

    fn save_execution(&mut self, exec: &Execution, _before: State) -> Result<(), EngineError> {
        let stamp = match self.stamps.get(&exec.id) {
            Some(stamp) => *stamp,
            None => self.ctx.load(exec.id)?.1,
        };
        self.ctx.save(exec.clone(), stamp)?;
        // A later save of the same execution in this command compares
        // against what was just written.
        self.stamps.insert(exec.id, stamp.after(exec));
        Ok(())
    }

    fn flow(&mut self, id: FlowId) -> Result<Option<FlowRecord>, EngineError> {
        load_flow(self.conn(), id)
    }

    fn flow_by_key(&mut self, namespace: &str, key: &str) -> Result<Option<FlowId>, EngineError> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT id FROM flows WHERE namespace = ?1 AND idempotency_key = ?2")
            .db()?;
        let id: Option<Vec<u8>> = stmt
            .query_row(params![namespace, key], |r| r.get(0))
            .optional()
            .db()?;
        id.map(|b| FlowId::from_slice(&b)).transpose()
    }

    fn insert_flow(&mut self, f: &FlowRecord) -> Result<(), EngineError> {
        let mut stmt = self
            .conn()
            .prepare_cached(&format!(
                "INSERT INTO flows ({FLOW_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))
            .db()?;
        stmt.execute(params![
            &f.id.as_bytes()[..],
            f.namespace,
            f.idempotency_key,
            f.fail_fast,
            f.cancelled,
            f.created_at,
            f.updated_at
        ])
        .db()?;
        Ok(())
    }

    fn update_flow(&mut self, f: &FlowRecord) -> Result<(), EngineError> {
        let mut stmt = self
            .conn()
            .prepare_cached("UPDATE flows SET cancelled = ?2, updated_at = ?3 WHERE id = ?1")
            .db()?;
        stmt.execute(params![&f.id.as_bytes()[..], f.cancelled, f.updated_at])
            .db()?;
        Ok(())
    }

    fn nodes(&mut self, flow: FlowId) -> Result<Vec<FlowNode>, EngineError> {
        query_nodes(self.conn(), NODES, flow, None)
    }

    fn node(&mut self, flow: FlowId, key: &str) -> Result<Option<FlowNode>, EngineError> {
        Ok(query_nodes(self.conn(), NODE, flow, Some(key))?.pop())
    }

    fn insert_node(&mut self, flow: FlowId, node: &FlowNode) -> Result<(), EngineError> {
        let mut stmt = self
            .conn()
            .prepare_cached(
                "INSERT INTO flow_nodes (flow_id, key, execution_id, join_spec, cancel_losers, spec_hash, \
                 position) VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
                 (SELECT COUNT(*) FROM flow_nodes WHERE flow_id = ?1))",
            )
            .db()?;
        stmt.execute(params![
            &flow.as_bytes()[..],
            node.key,
            &node.execution_id.as_bytes()[..],
            json(&node.join)?,
            node.cancel_losers,
            node.spec_hash as i64,
        ])
        .db()?;
        Ok(())
    }

    fn edges(&mut self, flow: FlowId) -> Result<Vec<FlowEdge>, EngineError> {
        query_edges(self.conn(), EDGES, flow, None)
    }

    fn edges_from(&mut self, flow: FlowId, key: &str) -> Result<Vec<FlowEdge>, EngineError> {
        query_edges(self.conn(), EDGES_FROM, flow, Some(key))
    }

    fn edges_into(&mut self, flow: FlowId, key: &str) -> Result<Vec<FlowEdge>, EngineError> {
        query_edges(self.conn(), EDGES_INTO, flow, Some(key))
    }

    fn insert_edge(&mut self, flow: FlowId, edge: &FlowEdge) -> Result<(), EngineError> {
        let mut stmt = self
            .conn()
            .prepare_cached(
                "INSERT INTO flow_edges (flow_id, from_key, to_key, condition, position) VALUES \
                 (?1, ?2, ?3, ?4, (SELECT COUNT(*) FROM flow_edges WHERE flow_id = ?1))",
            )
            .db()?;
        stmt.execute(params![
            &flow.as_bytes()[..],
            edge.from,
            edge.to,
            json(&edge.condition)?
        ])
        .db()?;
        Ok(())
    }

    fn claim_outbox(&mut self, _partition: u32, seq: u64) -> Result<bool, EngineError> {
        let mut stmt = self
            .conn()
            .prepare_cached(
                "UPDATE outbox SET dispatched_at = ?2 WHERE seq = ?1 AND dispatched_at IS NULL",
            )
            .db()?;
        let seq = i64::try_from(seq).map_err(EngineError::backend)?;
        Ok(stmt.execute(params![seq, self.ctx.now]).db()? == 1)
    }
}

impl SqliteBackend {
    /// Runs a flow algorithm in one write command.
    async fn flow_command<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&mut FlowTxn<'_, '_>, ff_core::Millis) -> Result<T, EngineError> + Send + 'static,
    {
        self.inner
            .writer
            .write(move |ctx| {
                let now = ctx.now;
                f(&mut FlowTxn::new(ctx), now)
            })
            .await
    }

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
        self.flow_command(move |txn, now| {
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
impl FlowOps for SqliteBackend {
    async fn create_flow(&self, spec: FlowSpec) -> Result<FlowCreated, EngineError> {
        // Validate before queueing, so bad input never takes a writer slot.
        spec.validate(&self.inner.limits)?;
        let limits = self.inner.limits.clone();
        self.flow_command(move |txn, now| cascade::create_flow(txn, spec, &limits, now))
            .await
    }

    async fn add_nodes(
        &self,
        handle: &LeaseHandle,
        nodes: Vec<NodeSpec>,
        edges: Vec<EdgeSpec>,
    ) -> Result<NodesAdded, EngineError> {
        let limits = self.inner.limits.clone();
        let handle = handle.clone();
        self.flow_command(move |txn, now| {
            cascade::add_nodes(txn, &handle, nodes, edges, &limits, now)
        })
        .await?
    }

    async fn cancel_flow(&self, id: FlowId) -> Result<FlowCancelResponse, EngineError> {
        self.flow_command(move |txn, now| cascade::cancel_flow(txn, id, now))
            .await
    }

    async fn cascade_completion(
        &self,
        payload: &CompletionPayload,
    ) -> Result<CascadeReport, EngineError> {
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
    async fn cascade_completions(
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
