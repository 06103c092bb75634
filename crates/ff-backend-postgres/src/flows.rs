//! `FlowCommands` (from which `ff_core` derives `FlowOps`), the flow reads
//! and the flow scan of maintenance: the `ff_core::cascade` algorithms over
//! [`FlowTxn`], one transaction per command, retried whole when it raced
//! another writer.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{PgPool, Row};

use ff_core::cascade::{self, CascadeReport};
use ff_core::completion_batch;
use ff_core::flow::{FlowFilter, FlowState, FlowSummary, FlowView, NodeView};
use ff_core::{
    CompletionPayload, EngineError, ExecutionId, FlowCommand, FlowCommands, FlowId, FlowScope,
    Millis, Page,
};

use crate::flow_txn::{read_edge, read_flow, FlowTxn, EDGES, FLOW_COLUMNS};
use crate::{PgResult, PostgresBackend};

/// Attempts of a flow command that keeps racing (a unique key taken by a
/// concurrent create, a deadlock) before the error is returned.
const MAX_ATTEMPTS: u32 = 8;

/// Which flow's row a command locks before it reads anything.
#[derive(Debug, Clone, Copy)]
enum FlowLock {
    None,
    Flow(FlowId),
    OfExecution(ExecutionId),
}

impl PostgresBackend {
    /// Runs a flow algorithm in one transaction on a blocking thread, and
    /// announces what it wrote once committed.
    async fn locked_command<T, F>(&self, lock: FlowLock, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: Fn(&mut FlowTxn, Millis) -> Result<T, EngineError> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let mut last = None;
        for _ in 0..MAX_ATTEMPTS {
            let f = Arc::clone(&f);
            let pool = self.inner.pool.clone();
            let rt = tokio::runtime::Handle::current();
            let now = self.now();
            let run: Result<Result<(T, _), (EngineError, bool)>, EngineError> =
                tokio::task::spawn_blocking(move || {
                    let mut txn = FlowTxn::begin(rt, &pool, now)?;
                    let attempt = (|| {
                        match lock {
                            FlowLock::None => {}
                            FlowLock::Flow(id) => txn.lock_flow(id)?,
                            FlowLock::OfExecution(id) => {
                                if let Some(flow) = txn.flow_of(id)? {
                                    txn.lock_flow(flow)?;
                                }
                            }
                        }
                        f(&mut txn, now)
                    })();
                    let retryable = txn.retryable;
                    match attempt {
                        Ok(out) => match txn.commit() {
                            Ok(saved) => Ok(Ok((out, saved))),
                            Err(err) => Ok(Err((err, retryable))),
                        },
                        Err(err) => Ok(Err((err, retryable))),
                    }
                })
                .await
                .map_err(|e| EngineError::backend(format!("flow command panicked: {e}")))?;
            match run? {
                Ok((out, saved)) => {
                    self.announce(saved);
                    return Ok(out);
                }
                Err((err, true)) => {
                    tracing::debug!(error = %err, "flow command raced; retrying");
                    last = Some(err);
                }
                Err((err, false)) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| EngineError::backend("flow command gave up")))
    }

    /// Cascades completions of flow members in one transaction, each in a
    /// savepoint of its own (a failure undoes only that one), flows locked
    /// in id order so two batches never wait on each other in a cycle.
    /// Answers in `items` order; the outer error means nothing committed.
    async fn cascade_flow_batch(
        &self,
        mut items: Vec<CompletionPayload>,
    ) -> Result<Vec<Result<CascadeReport, EngineError>>, EngineError> {
        let order: Vec<(FlowId, u64)> = items
            .iter()
            .map(|p| (p.flow_id.unwrap_or_default(), p.seq))
            .collect();
        let mut index: Vec<usize> = (0..items.len()).collect();
        index.sort_by_key(|&i| order[i]);
        let pool = self.inner.pool.clone();
        let rt = tokio::runtime::Handle::current();
        let now = self.now();
        let sorted: Vec<CompletionPayload> = index.iter().map(|&i| items[i].clone()).collect();
        items.clear();
        let (sorted_results, saved) = tokio::task::spawn_blocking(move || {
            let mut txn = FlowTxn::begin(rt, &pool, now)?;
            let mut results = Vec::with_capacity(sorted.len());
            for payload in &sorted {
                let mark = txn.savepoint()?;
                let applied = (|| {
                    if let Some(flow) = payload.flow_id {
                        txn.lock_flow(flow)?;
                    }
                    let report = cascade::cascade(&mut txn, payload, now)?;
                    txn.release()?;
                    Ok(report)
                })();
                if applied.is_err() {
                    txn.roll_back_to(mark)?;
                }
                results.push(applied);
            }
            Ok::<_, EngineError>((results, txn.commit()?))
        })
        .await
        .map_err(|e| EngineError::backend(format!("cascade batch panicked: {e}")))??;
        self.announce(saved);
        let mut results: Vec<Option<Result<CascadeReport, EngineError>>> =
            (0..index.len()).map(|_| None).collect();
        for (&i, result) in index.iter().zip(sorted_results) {
            results[i] = Some(result);
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(EngineError::backend("a cascade went unanswered"))))
            .collect())
    }

    /// The cascade of a solo execution's completion: claims the outbox
    /// entry, as `cascade::cascade` would, and nothing else.
    async fn dispatch_solo(
        &self,
        payload: &CompletionPayload,
    ) -> Result<CascadeReport, EngineError> {
        let seq = i64::try_from(payload.seq).map_err(EngineError::backend)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.inner
            .dispatches
            .send(crate::dispatch::Job { seq, reply })
            .map_err(|_| EngineError::backend("the backend is closed"))?;
        let dispatched = answer
            .await
            .map_err(|_| EngineError::backend("the backend closed during a dispatch"))??;
        Ok(CascadeReport {
            dispatched,
            cascaded_at: self.now(),
            ..CascadeReport::default()
        })
    }

    /// Decides blocked flow nodes whose parents all finished at or before
    /// `cutoff`; returns how many were promoted or skipped.
    pub(crate) async fn reconcile_blocked_nodes(
        &self,
        cutoff: Millis,
        limit: u32,
    ) -> Result<u32, EngineError> {
        let stuck = stuck_blocked(&self.inner.pool, cutoff, limit).await?;
        let mut decided = 0;
        for (flow, key) in stuck {
            let report = self
                .locked_command(FlowLock::Flow(flow), move |txn, now| {
                    cascade::reconcile_node(txn, flow, &key, now)
                })
                .await?;
            decided += (report.promoted.len() + report.skipped.len()) as u32;
        }
        Ok(decided)
    }
}

/// Blocked flow nodes none of whose parents is unfinished or finished after
/// `cutoff`.
async fn stuck_blocked(
    pool: &PgPool,
    cutoff: Millis,
    limit: u32,
) -> Result<Vec<(FlowId, String)>, EngineError> {
    let rows = sqlx::query(
        "SELECT e.flow_id, e.node_key FROM executions e \
         WHERE e.state = 'blocked' AND e.flow_id IS NOT NULL AND NOT EXISTS ( \
           SELECT 1 FROM flow_edges g \
           JOIN flow_nodes n ON n.flow_id = g.flow_id AND n.key = g.from_key \
           JOIN executions p ON p.id = n.execution_id \
           WHERE g.flow_id = e.flow_id AND g.to_key = e.node_key \
             AND (p.state NOT IN ('completed', 'failed', 'cancelled', 'skipped') \
                  OR p.finished_at > $1)) \
         LIMIT $2",
    )
    .bind(cutoff)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .db()?;
    rows.iter()
        .map(|row| {
            Ok((
                FlowId::from_uuid(row.try_get(0).db()?),
                row.try_get(1).db()?,
            ))
        })
        .collect()
}

/// A flow with its nodes' states.
pub(crate) async fn flow_view(pool: &PgPool, id: FlowId) -> Result<FlowView, EngineError> {
    let record = sqlx::query(&format!("SELECT {FLOW_COLUMNS} FROM flows WHERE id = $1"))
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await
        .db()?
        .as_ref()
        .map(read_flow)
        .transpose()?
        .ok_or_else(|| EngineError::NotFound {
            entity: "flow",
            id: id.to_string(),
        })?;
    let rows = sqlx::query(
        "SELECT n.key, n.execution_id, n.join_spec, e.state FROM flow_nodes n \
         JOIN executions e ON e.id = n.execution_id WHERE n.flow_id = $1 ORDER BY n.position",
    )
    .bind(id.as_uuid())
    .fetch_all(pool)
    .await
    .db()?;
    let mut nodes = Vec::with_capacity(rows.len());
    for row in &rows {
        let join: String = row.try_get(2).db()?;
        let state: String = row.try_get(3).db()?;
        nodes.push(NodeView {
            key: row.try_get(0).db()?,
            execution_id: ExecutionId::from_uuid(row.try_get(1).db()?),
            join: serde_json::from_str(&join).map_err(EngineError::backend)?,
            state: state.parse()?,
        });
    }
    let edges = sqlx::query(EDGES)
        .bind(id.as_uuid())
        .bind(None::<&str>)
        .bind(None::<&str>)
        .fetch_all(pool)
        .await
        .db()?
        .iter()
        .map(read_edge)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FlowView::new(record, nodes, edges))
}

/// A page of flows, the state derived from member counts per flow (as
/// `FlowState::derive` does), filtered and limited in SQL.
pub(crate) async fn flow_page(
    pool: &PgPool,
    filter: &FlowFilter,
    after: Option<FlowId>,
) -> Result<Page<FlowSummary>, EngineError> {
    let rows = sqlx::query(
        "SELECT id, namespace, fail_fast, created_at, nodes, state FROM ( \
           SELECT f.id, f.namespace, f.fail_fast, f.created_at, c.nodes, \
             CASE WHEN f.cancelled THEN 'cancelled' WHEN c.open > 0 THEN 'running' \
                  WHEN c.failed > 0 THEN 'failed' ELSE 'completed' END AS state \
           FROM flows f CROSS JOIN LATERAL ( \
             SELECT COUNT(*) AS nodes, \
               COUNT(*) FILTER (WHERE e.state NOT IN \
                 ('completed', 'failed', 'cancelled', 'skipped')) AS open, \
               COUNT(*) FILTER (WHERE e.state = 'failed') AS failed \
             FROM flow_nodes n JOIN executions e ON e.id = n.execution_id \
             WHERE n.flow_id = f.id) c \
           WHERE f.namespace = $1 AND ($2::uuid IS NULL OR f.id > $2)) s \
         WHERE ($3::text IS NULL OR state = $3) ORDER BY id LIMIT $4",
    )
    .bind(&filter.namespace)
    .bind(after.map(|id| *id.as_uuid()))
    .bind(filter.state.map(FlowState::as_str))
    .bind(i64::from(filter.limit) + 1)
    .fetch_all(pool)
    .await
    .db()?;
    let items = rows
        .iter()
        .map(|row| {
            let nodes: i64 = row.try_get(4).db()?;
            let state: String = row.try_get(5).db()?;
            Ok(FlowSummary {
                id: FlowId::from_uuid(row.try_get(0).db()?),
                namespace: row.try_get(1).db()?,
                state: state.parse()?,
                fail_fast: row.try_get(2).db()?,
                created_at: row.try_get(3).db()?,
                nodes: u64::try_from(nodes).unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    Ok(Page::from_overfetch(items, filter.limit))
}

#[async_trait]
impl FlowCommands for PostgresBackend {
    /// Locks the flow's row first (none for a new flow).
    async fn flow_command<T: Send + 'static, C: FlowCommand<T>>(
        &self,
        scope: FlowScope,
        command: C,
    ) -> Result<T, EngineError> {
        let lock = match scope {
            FlowScope::New { .. } => FlowLock::None,
            FlowScope::OfExecution(id) => FlowLock::OfExecution(id),
            FlowScope::Flow(id) => FlowLock::Flow(id),
        };
        self.locked_command(lock, move |txn, now| command(txn, now))
            .await
    }

    async fn cascade_many(
        &self,
        payloads: &[CompletionPayload],
    ) -> Result<Vec<Result<CascadeReport, EngineError>>, EngineError> {
        completion_batch::cascade_batch(
            payloads,
            |solo| async move {
                Ok(
                    futures::future::join_all(solo.into_iter().map(|p| self.dispatch_solo(p)))
                        .await,
                )
            },
            |members| async move {
                match members.as_slice() {
                    [] => Ok(Vec::new()),
                    [one] => Ok(vec![self.cascade_one(one).await]),
                    _ => {
                        self.cascade_flow_batch(members.into_iter().cloned().collect())
                            .await
                    }
                }
            },
            |payload| self.cascade_one(payload),
        )
        .await
    }

    async fn cascade_one(&self, payload: &CompletionPayload) -> Result<CascadeReport, EngineError> {
        let Some(flow) = payload.flow_id else {
            // A solo execution has nothing to cascade into: claiming its
            // entry is the whole cascade, one statement.
            return self.dispatch_solo(payload).await;
        };
        let payload = payload.clone();
        self.locked_command(FlowLock::Flow(flow), move |txn, now| {
            cascade::cascade(txn, &payload, now)
        })
        .await
    }
}
