//! [`FlowTxn`]: the `ff_core::FlowStore` of one Postgres transaction, for
//! the flow algorithms, which are synchronous. A flow command runs on a
//! blocking thread and waits on each statement there, so it works under
//! either tokio runtime flavour.
//!
//! Writes are buffered and sent as one statement per kind just before the
//! next read and at commit: creating a 1,000-node flow costs a handful of
//! round trips, not thousands. Executions are read `FOR UPDATE`, so what a
//! rule decides on stays true until the commit.

use std::collections::HashMap;
use std::future::Future;

use sqlx::{Postgres, Row, Transaction};
use tokio::runtime::Handle;

use ff_core::cascade::FlowStore;
use ff_core::flow::{FlowEdge, FlowNode, FlowRecord};
use ff_core::{EngineError, Execution, ExecutionId, FlowId, Millis, State};

use crate::rows::{self, to_json};
use crate::write::{self, Change, Saved};
use crate::{classify, is_retryable, PgResult, StoreError};

pub(crate) const FLOW_COLUMNS: &str =
    "id, namespace, idempotency_key, fail_fast, cancelled, created_at, updated_at";

/// One flow command's transaction.
pub(crate) struct FlowTxn {
    rt: Handle,
    tx: Transaction<'static, Postgres>,
    now: Millis,
    /// Row version of every execution read or written, for the next write.
    versions: HashMap<ExecutionId, i64>,
    new_executions: Vec<Execution>,
    new_nodes: Vec<(FlowId, FlowNode)>,
    new_edges: Vec<(FlowId, FlowEdge)>,
    /// Changed executions not yet written, latest state per id.
    changes: Vec<Change>,
    /// What the written changes announce after the commit.
    saved: Saved,
    /// Set when a statement failed in a way worth retrying the command.
    pub(crate) retryable: bool,
    /// Flows this transaction holds locked, as read when locked: nobody
    /// else can change them, so they are not read again.
    locked: HashMap<FlowId, Option<FlowRecord>>,
    /// Nodes and edges of locked flows, read once each, in creation order.
    structure: HashMap<FlowId, (Vec<FlowNode>, Vec<FlowEdge>)>,
}

/// Where a savepoint was taken: how much had been announced then.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    completions: usize,
    written: usize,
    wake: bool,
}

/// Waits on `fut` from a blocking thread, noting a retryable failure.
fn wait<T>(
    rt: &Handle,
    retryable: &mut bool,
    fut: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, EngineError> {
    rt.block_on(fut).map_err(|err| {
        *retryable |= is_retryable(&err);
        classify(err)
    })
}

impl FlowTxn {
    /// Begins a transaction; call from a blocking thread of `rt`.
    pub(crate) fn begin(rt: Handle, pool: &sqlx::PgPool, now: Millis) -> Result<Self, EngineError> {
        let tx = rt.block_on(pool.begin()).db()?;
        Ok(Self {
            rt,
            tx,
            now,
            versions: HashMap::new(),
            new_executions: Vec::new(),
            new_nodes: Vec::new(),
            new_edges: Vec::new(),
            changes: Vec::new(),
            saved: Saved::default(),
            retryable: false,
            locked: HashMap::new(),
            structure: HashMap::new(),
        })
    }

    /// Notes whether a shared helper's failure is worth retrying.
    fn note<T>(&mut self, result: Result<T, StoreError>) -> Result<T, EngineError> {
        result.map_err(|err| {
            self.retryable |= err.is_retryable();
            EngineError::from(err)
        })
    }

    /// Locks flow `id`'s row (when it exists), so the flow's commands run one
    /// at a time.
    pub(crate) fn lock_flow(&mut self, id: FlowId) -> Result<(), EngineError> {
        let row = wait(
            &self.rt,
            &mut self.retryable,
            sqlx::query(&format!(
                "SELECT {FLOW_COLUMNS} FROM flows WHERE id = $1 FOR UPDATE"
            ))
            .bind(id.as_uuid())
            .fetch_optional(&mut *self.tx),
        )?;
        let record = row.as_ref().map(read_flow).transpose()?;
        self.locked.insert(id, record);
        Ok(())
    }

    /// The nodes and edges of `flow`, which this transaction holds locked,
    /// read on first use.
    fn structure(&mut self, flow: FlowId) -> Result<&(Vec<FlowNode>, Vec<FlowEdge>), EngineError> {
        if !self.structure.contains_key(&flow) {
            let nodes = self.query_nodes(flow, None)?;
            let edges = self.query_edges(flow, None, None)?;
            self.structure.insert(flow, (nodes, edges));
        }
        self.structure
            .get(&flow)
            .ok_or_else(|| EngineError::backend("flow structure vanished from the cache"))
    }

    /// The flow execution `id` belongs to, if any.
    pub(crate) fn flow_of(&mut self, id: ExecutionId) -> Result<Option<FlowId>, EngineError> {
        let flow: Option<Option<uuid::Uuid>> = wait(
            &self.rt,
            &mut self.retryable,
            sqlx::query_scalar("SELECT flow_id FROM executions WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_optional(&mut *self.tx),
        )?;
        Ok(flow.flatten().map(FlowId::from_uuid))
    }

    /// Writes what is buffered and opens a savepoint; the mark undoes what
    /// comes after it with [`Self::roll_back_to`].
    pub(crate) fn savepoint(&mut self) -> Result<Mark, EngineError> {
        self.flush()?;
        wait(
            &self.rt,
            &mut self.retryable,
            sqlx::query("SAVEPOINT cascade").execute(&mut *self.tx),
        )?;
        Ok(Mark {
            completions: self.saved.completions.len(),
            written: self.saved.written.len(),
            wake: self.saved.wake,
        })
    }

    /// Writes what is buffered and keeps what was done since the savepoint.
    pub(crate) fn release(&mut self) -> Result<(), EngineError> {
        self.flush()?;
        wait(
            &self.rt,
            &mut self.retryable,
            sqlx::query("RELEASE SAVEPOINT cascade").execute(&mut *self.tx),
        )?;
        Ok(())
    }

    /// Undoes everything since the savepoint `mark` was taken at.
    pub(crate) fn roll_back_to(&mut self, mark: Mark) -> Result<(), EngineError> {
        self.new_executions.clear();
        self.new_nodes.clear();
        self.new_edges.clear();
        self.changes.clear();
        // Versions read after the savepoint may be of undone writes; rows
        // are read again before their next write.
        self.versions.clear();
        self.saved.completions.truncate(mark.completions);
        self.saved.written.truncate(mark.written);
        self.saved.wake = mark.wake;
        self.retryable = false;
        // Locks taken after the savepoint are released with it.
        self.locked.clear();
        self.structure.clear();
        wait(
            &self.rt,
            &mut self.retryable,
            sqlx::query("ROLLBACK TO SAVEPOINT cascade").execute(&mut *self.tx),
        )?;
        Ok(())
    }

    /// Writes what is buffered and commits; returns what to announce.
    pub(crate) fn commit(mut self) -> Result<Saved, EngineError> {
        self.flush()?;
        wait(&self.rt, &mut self.retryable, self.tx.commit())?;
        Ok(self.saved)
    }

    /// Sends the buffered writes, inserts before updates.
    fn flush(&mut self) -> Result<(), EngineError> {
        if !self.new_executions.is_empty() {
            let execs = std::mem::take(&mut self.new_executions);
            let inserted = self
                .rt
                .block_on(rows::insert_batch(&mut *self.tx, &execs, false));
            self.note(inserted)?;
            for e in &execs {
                self.versions.insert(e.id, 0);
            }
        }
        if !self.new_nodes.is_empty() {
            self.flush_nodes()?;
        }
        if !self.new_edges.is_empty() {
            self.flush_edges()?;
        }
        if !self.changes.is_empty() {
            let changes = std::mem::take(&mut self.changes);
            let saved = self
                .rt
                .block_on(write::save_batch(&mut *self.tx, &changes, self.now));
            let saved = self.note(saved)?;
            if !saved.all(&changes) {
                return Err(EngineError::backend(
                    "a locked execution changed during a flow command",
                ));
            }
            for c in &changes {
                if let Some(v) = self.versions.get_mut(&c.exec.id) {
                    *v += 1;
                }
            }
            self.saved.wake |= saved.wake;
            self.saved.completions.extend(saved.completions);
            self.saved.written.extend(saved.written);
        }
        Ok(())
    }

    fn flush_nodes(&mut self) -> Result<(), EngineError> {
        let nodes = std::mem::take(&mut self.new_nodes);
        let mut flow = Vec::new();
        let mut key = Vec::new();
        let mut execution = Vec::new();
        let mut join = Vec::new();
        let mut cancel_losers = Vec::new();
        let mut hash = Vec::new();
        for (f, n) in &nodes {
            flow.push(*f.as_uuid());
            key.push(n.key.as_str());
            execution.push(*n.execution_id.as_uuid());
            join.push(to_json(&n.join)?);
            cancel_losers.push(n.cancel_losers);
            // The hash is stored as its bit pattern.
            hash.push(n.spec_hash as i64);
        }
        wait(
            &self.rt,
            &mut self.retryable,
            sqlx::query(
                "INSERT INTO flow_nodes (flow_id, key, execution_id, join_spec, cancel_losers, \
                 spec_hash, position) \
                 SELECT f, k, e, j, c, h, \
                   (SELECT COALESCE(MAX(position) + 1, 0) FROM flow_nodes WHERE flow_id = f) + o \
                 FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::bool[], \
                   $6::bigint[]) WITH ORDINALITY AS t(f, k, e, j, c, h, o)",
            )
            .bind(flow)
            .bind(key)
            .bind(execution)
            .bind(join)
            .bind(cancel_losers)
            .bind(hash)
            .execute(&mut *self.tx),
        )?;
        Ok(())
    }

    fn flush_edges(&mut self) -> Result<(), EngineError> {
        let edges = std::mem::take(&mut self.new_edges);
        let mut flow = Vec::new();
        let mut from = Vec::new();
        let mut to = Vec::new();
        let mut condition = Vec::new();
        for (f, e) in &edges {
            flow.push(*f.as_uuid());
            from.push(e.from.as_str());
            to.push(e.to.as_str());
            condition.push(to_json(&e.condition)?);
        }
        wait(
            &self.rt,
            &mut self.retryable,
            sqlx::query(
                "INSERT INTO flow_edges (flow_id, from_key, to_key, condition, position) \
                 SELECT f, a, b, c, \
                   (SELECT COALESCE(MAX(position) + 1, 0) FROM flow_edges WHERE flow_id = f) + o \
                 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) \
                   WITH ORDINALITY AS t(f, a, b, c, o)",
            )
            .bind(flow)
            .bind(from)
            .bind(to)
            .bind(condition)
            .execute(&mut *self.tx),
        )?;
        Ok(())
    }

    /// The edges of `flow` that `keep` keeps, in creation order: from the
    /// cache when the flow is locked, else read.
    fn edges_where(
        &mut self,
        flow: FlowId,
        keep: impl Fn(&FlowEdge) -> bool,
    ) -> Result<Vec<FlowEdge>, EngineError> {
        let edges = if self.locked.contains_key(&flow) {
            self.structure(flow)?.1.clone()
        } else {
            self.query_edges(flow, None, None)?
        };
        Ok(edges.into_iter().filter(|e| keep(e)).collect())
    }

    fn query_nodes(
        &mut self,
        flow: FlowId,
        key: Option<&str>,
    ) -> Result<Vec<FlowNode>, EngineError> {
        self.flush()?;
        let rows = wait(
            &self.rt,
            &mut self.retryable,
            sqlx::query(
                "SELECT key, execution_id, join_spec, cancel_losers, spec_hash FROM flow_nodes \
                 WHERE flow_id = $1 AND ($2::text IS NULL OR key = $2) ORDER BY position",
            )
            .bind(flow.as_uuid())
            .bind(key)
            .fetch_all(&mut *self.tx),
        )?;
        rows.iter().map(read_node).collect()
    }

    fn query_edges(
        &mut self,
        flow: FlowId,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<FlowEdge>, EngineError> {
        self.flush()?;
        let rows = wait(
            &self.rt,
            &mut self.retryable,
            sqlx::query(EDGES)
                .bind(flow.as_uuid())
                .bind(from)
                .bind(to)
                .fetch_all(&mut *self.tx),
        )?;
        rows.iter().map(read_edge).collect()
    }
}

/// Edges of a flow in creation order; `$2`/`$3` narrow to one parent or
/// one child when set.
pub(crate) const EDGES: &str = "SELECT from_key, to_key, condition FROM flow_edges \
     WHERE flow_id = $1 AND ($2::text IS NULL OR from_key = $2) \
       AND ($3::text IS NULL OR to_key = $3) ORDER BY position";

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, EngineError> {
    serde_json::from_str(text).map_err(EngineError::backend)
}

pub(crate) fn read_flow(row: &sqlx::postgres::PgRow) -> Result<FlowRecord, EngineError> {
    Ok(FlowRecord {
        id: FlowId::from_uuid(row.try_get(0).db()?),
        namespace: row.try_get(1).db()?,
        idempotency_key: row.try_get(2).db()?,
        fail_fast: row.try_get(3).db()?,
        cancelled: row.try_get(4).db()?,
        created_at: row.try_get(5).db()?,
        updated_at: row.try_get(6).db()?,
    })
}

fn read_node(row: &sqlx::postgres::PgRow) -> Result<FlowNode, EngineError> {
    let join: String = row.try_get(2).db()?;
    let hash: i64 = row.try_get(4).db()?;
    Ok(FlowNode {
        key: row.try_get(0).db()?,
        execution_id: ExecutionId::from_uuid(row.try_get(1).db()?),
        join: from_json(&join)?,
        cancel_losers: row.try_get(3).db()?,
        spec_hash: hash as u64,
    })
}

pub(crate) fn read_edge(row: &sqlx::postgres::PgRow) -> Result<FlowEdge, EngineError> {
    let condition: String = row.try_get(2).db()?;
    Ok(FlowEdge {
        from: row.try_get(0).db()?,
        to: row.try_get(1).db()?,
        condition: from_json(&condition)?,
    })
}

impl FlowStore for FlowTxn {
    fn execution(&mut self, id: ExecutionId) -> Result<Option<Execution>, EngineError> {
        self.flush()?;
        let stored = self.rt.block_on(rows::load(&mut *self.tx, id, true))?;
        Ok(stored.map(|s| {
            self.versions.insert(id, s.version);
            s.exec
        }))
    }

    fn insert_execution(&mut self, exec: &Execution) -> Result<(), EngineError> {
        self.new_executions.push(exec.clone());
        Ok(())
    }

    fn save_execution(&mut self, exec: &Execution, before: State) -> Result<(), EngineError> {
        if let Some(pending) = self.changes.iter_mut().find(|c| c.exec.id == exec.id) {
            pending.exec = exec.clone();
            return Ok(());
        }
        if self.new_executions.iter().any(|e| e.id == exec.id) {
            self.flush()?;
        }
        let version = match self.versions.get(&exec.id) {
            Some(v) => *v,
            None => {
                self.execution(exec.id)?;
                *self
                    .versions
                    .get(&exec.id)
                    .ok_or_else(|| EngineError::execution_not_found(exec.id))?
            }
        };
        self.changes.push(Change {
            exec: exec.clone(),
            version,
            before,
        });
        Ok(())
    }

    fn flow(&mut self, id: FlowId) -> Result<Option<FlowRecord>, EngineError> {
        if let Some(record) = self.locked.get(&id) {
            return Ok(record.clone());
        }
        self.flush()?;
        let row = wait(
            &self.rt,
            &mut self.retryable,
            sqlx::query(&format!("SELECT {FLOW_COLUMNS} FROM flows WHERE id = $1"))
                .bind(id.as_uuid())
                .fetch_optional(&mut *self.tx),
        )?;
        row.as_ref().map(read_flow).transpose()
    }

    fn flow_by_key(&mut self, namespace: &str, key: &str) -> Result<Option<FlowId>, EngineError> {
        self.flush()?;
        let id: Option<uuid::Uuid> = wait(
            &self.rt,
            &mut self.retryable,
            sqlx::query_scalar(
                "SELECT id FROM flows WHERE namespace = $1 AND idempotency_key = $2",
            )
            .bind(namespace)
            .bind(key)
            .fetch_optional(&mut *self.tx),
        )?;
        Ok(id.map(FlowId::from_uuid))
    }

    fn insert_flow(&mut self, f: &FlowRecord) -> Result<(), EngineError> {
        wait(
            &self.rt,
            &mut self.retryable,
            sqlx::query(&format!(
                "INSERT INTO flows ({FLOW_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ))
            .bind(f.id.as_uuid())
            .bind(&f.namespace)
            .bind(&f.idempotency_key)
            .bind(f.fail_fast)
            .bind(f.cancelled)
            .bind(f.created_at)
            .bind(f.updated_at)
            .execute(&mut *self.tx),
        )?;
        Ok(())
    }

    fn update_flow(&mut self, f: &FlowRecord) -> Result<(), EngineError> {
        wait(
            &self.rt,
            &mut self.retryable,
            sqlx::query("UPDATE flows SET cancelled = $2, updated_at = $3 WHERE id = $1")
                .bind(f.id.as_uuid())
                .bind(f.cancelled)
                .bind(f.updated_at)
                .execute(&mut *self.tx),
        )?;
        if let Some(record) = self.locked.get_mut(&f.id) {
            *record = Some(f.clone());
        }
        Ok(())
    }

    fn nodes(&mut self, flow: FlowId) -> Result<Vec<FlowNode>, EngineError> {
        if self.locked.contains_key(&flow) {
            return Ok(self.structure(flow)?.0.clone());
        }
        self.query_nodes(flow, None)
    }

    fn node(&mut self, flow: FlowId, key: &str) -> Result<Option<FlowNode>, EngineError> {
        if self.locked.contains_key(&flow) {
            let nodes = &self.structure(flow)?.0;
            return Ok(nodes.iter().find(|n| n.key == key).cloned());
        }
        Ok(self.query_nodes(flow, Some(key))?.pop())
    }

    fn insert_node(&mut self, flow: FlowId, node: &FlowNode) -> Result<(), EngineError> {
        if let Some((nodes, _)) = self.structure.get_mut(&flow) {
            nodes.push(node.clone());
        }
        self.new_nodes.push((flow, node.clone()));
        Ok(())
    }

    fn edges(&mut self, flow: FlowId) -> Result<Vec<FlowEdge>, EngineError> {
        self.edges_where(flow, |_| true)
    }

    fn edges_from(&mut self, flow: FlowId, key: &str) -> Result<Vec<FlowEdge>, EngineError> {
        if !self.locked.contains_key(&flow) {
            return self.query_edges(flow, Some(key), None);
        }
        self.edges_where(flow, |e| e.from == key)
    }

    fn edges_into(&mut self, flow: FlowId, key: &str) -> Result<Vec<FlowEdge>, EngineError> {
        if !self.locked.contains_key(&flow) {
            return self.query_edges(flow, None, Some(key));
        }
        self.edges_where(flow, |e| e.to == key)
    }

    fn insert_edge(&mut self, flow: FlowId, edge: &FlowEdge) -> Result<(), EngineError> {
        if let Some((_, edges)) = self.structure.get_mut(&flow) {
            edges.push(edge.clone());
        }
        self.new_edges.push((flow, edge.clone()));
        Ok(())
    }

    fn claim_outbox(&mut self, _partition: u32, seq: u64) -> Result<bool, EngineError> {
        self.flush()?;
        let seq = i64::try_from(seq).map_err(EngineError::backend)?;
        let done = wait(
            &self.rt,
            &mut self.retryable,
            sqlx::query(
                "UPDATE outbox SET dispatched_at = $2 WHERE seq = $1 AND dispatched_at IS NULL",
            )
            .bind(seq)
            .bind(self.now)
            .execute(&mut *self.tx),
        )?;
        Ok(done.rows_affected() == 1)
    }
}
