//! [`FlowTxn`], this backend's `FlowStore`: the flow algorithms' reads and
//! writes inside one write command, and the row mappings of flows, nodes and
//! edges the flow reads share.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Row};

use ff_core::cascade::FlowStore;
use ff_core::flow::{FlowEdge, FlowNode, FlowRecord};
use ff_core::{EngineError, Execution, ExecutionId, FlowId, State};

use crate::command::WriteCtx;
use crate::rows::{self, Stamp};
use crate::SqlResult;

/// The flow algorithms' view of one write command. Remembers the stamp of
/// every execution it loaded, so a save updates the right row.
pub(crate) struct FlowTxn<'a, 'c> {
    ctx: &'a mut WriteCtx<'c>,
    stamps: HashMap<ExecutionId, Stamp>,
}

impl<'a, 'c> FlowTxn<'a, 'c> {
    pub(crate) fn new(ctx: &'a mut WriteCtx<'c>) -> Self {
        Self {
            ctx,
            stamps: HashMap::new(),
        }
    }

    pub(crate) fn conn(&self) -> &'c Connection {
        self.ctx.conn()
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, EngineError> {
    serde_json::to_string(value).map_err(EngineError::backend)
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, EngineError> {
    serde_json::from_str(text).map_err(EngineError::backend)
}

pub(crate) fn read_flow(row: &Row<'_>) -> Result<FlowRecord, EngineError> {
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

pub(crate) const FLOW_COLUMNS: &str =
    "id, namespace, idempotency_key, fail_fast, cancelled, created_at, updated_at";

pub(crate) fn load_flow(conn: &Connection, id: FlowId) -> Result<Option<FlowRecord>, EngineError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {FLOW_COLUMNS} FROM flows WHERE id = ?1"))
        .db()?;
    let mut rows = stmt.query([&id.as_bytes()[..]]).db()?;
    rows.next().db()?.map(read_flow).transpose()
}

pub(crate) fn read_node(row: &Row<'_>) -> Result<FlowNode, EngineError> {
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

pub(crate) fn query_nodes(
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

pub(crate) const NODES: &str =
    "SELECT key, execution_id, join_spec, cancel_losers, spec_hash FROM flow_nodes \
                     WHERE flow_id = ?1 ORDER BY position";
pub(crate) const NODE: &str =
    "SELECT key, execution_id, join_spec, cancel_losers, spec_hash FROM flow_nodes \
                    WHERE flow_id = ?1 AND key = ?2";

pub(crate) fn query_edges(
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

pub(crate) const EDGES: &str =
    "SELECT from_key, to_key, condition FROM flow_edges WHERE flow_id = ?1 ORDER BY position";
pub(crate) const EDGES_FROM: &str =
    "SELECT from_key, to_key, condition FROM flow_edges WHERE flow_id = ?1 AND from_key = ?2 ORDER BY position";
pub(crate) const EDGES_INTO: &str =
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
