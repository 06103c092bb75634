//! `FlowCommands` (from which `ff_core` derives `FlowOps`) and the flow
//! scan of maintenance: the `ff_core::cascade` algorithms over [`FlowTxn`],
//! each one `ff_v2_apply` on the flow's partition, retried whole when it
//! raced another writer.

use std::sync::Arc;

use async_trait::async_trait;

use ff_core::cascade::{self, CascadeReport};
use ff_core::completion_batch;
use ff_core::{
    CompletionPayload, EngineError, FlowCommand, FlowCommands, FlowId, FlowScope, Millis, State,
};

use crate::flow_txn::FlowTxn;
use crate::write::{Outcome, Plan};
use crate::{ValkeyBackend, MAX_ATTEMPTS};

impl ValkeyBackend {
    /// Runs a flow algorithm over partition `p` on a blocking thread (its
    /// reads block on the server) and commits what it wrote as one call.
    pub(crate) async fn partition_command<T, F>(&self, p: u32, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: Fn(&mut FlowTxn, Millis) -> Result<T, EngineError> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        for _ in 0..MAX_ATTEMPTS {
            let f = Arc::clone(&f);
            let backend = self.clone();
            let rt = tokio::runtime::Handle::current();
            let now = self.now();
            let (out, plan): (T, Plan) = tokio::task::spawn_blocking(move || {
                let mut txn = FlowTxn::new(rt, backend, p, now);
                let out = f(&mut txn, now)?;
                Ok::<_, EngineError>((out, txn.into_plan()?))
            })
            .await
            .map_err(|e| EngineError::backend(format!("flow command panicked: {e}")))??;
            match self.commit(plan, now).await? {
                Outcome::Applied => return Ok(out),
                Outcome::Conflict(what) => tracing::trace!(what, "flow command raced; retrying"),
            }
        }
        Err(EngineError::Unavailable {
            message: "the flow kept changing under this command; try again".into(),
        })
    }

    /// The cascade of solo executions' completions: claiming each outbox
    /// entry is the whole cascade, one `ff_v2_dispatch` per partition.
    async fn dispatch_solo(
        &self,
        payloads: &[&CompletionPayload],
    ) -> Result<Vec<Result<CascadeReport, EngineError>>, EngineError> {
        let mut by_partition: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
        for (i, payload) in payloads.iter().enumerate() {
            by_partition.entry(payload.partition).or_default().push(i);
        }
        let now = self.now();
        let mut results: Vec<Result<CascadeReport, EngineError>> = payloads
            .iter()
            .map(|_| Err(EngineError::backend("a dispatch went unanswered")))
            .collect();
        for (p, items) in by_partition {
            if p >= self.keys().partitions() {
                for i in items {
                    results[i] = Err(EngineError::invalid(
                        "partition",
                        format!("{p} is not a partition here"),
                    ));
                }
                continue;
            }
            let mut args = vec![now.to_string()];
            args.extend(items.iter().map(|&i| payloads[i].seq.to_string()));
            let done: Vec<i64> = self
                .inner
                .conn
                .fcall("ff_v2_dispatch", self.keys().base(p), &args)
                .await?;
            for (&i, done) in items.iter().zip(done) {
                results[i] = Ok(CascadeReport {
                    dispatched: done == 1,
                    cascaded_at: now,
                    ..CascadeReport::default()
                });
            }
        }
        Ok(results)
    }

    /// Decides blocked flow nodes whose parents all finished at or before
    /// `cutoff`; returns how many were promoted or skipped. Looks at up to
    /// `limit` blocked members in all, each partition's from where the last
    /// call left off, so members waiting legitimately cannot hide others.
    pub(crate) async fn reconcile_blocked_nodes(
        &self,
        cutoff: Millis,
        limit: u32,
    ) -> Result<u32, EngineError> {
        let mut decided = 0;
        let mut budget = limit;
        // What this scan itself made terminal (skips, cancelled losers): a
        // parent among them did not count as finished when the scan began,
        // so its children wait for its cascade, as on the SQL backends,
        // which list the stuck nodes before deciding any.
        let mut ended_here: std::collections::HashSet<ff_core::ExecutionId> = Default::default();
        for p in 0..self.keys().partitions() {
            if budget == 0 {
                break;
            }
            let from = self.inner.reconcile_from.get(p);
            let start = from.map_or("-".to_owned(), |id| format!("({id}"));
            let ids: Vec<String> = self
                .inner
                .conn
                .query(
                    redis::cmd("ZRANGE")
                        .arg(self.keys().blocked(p))
                        .arg(start)
                        .arg("+")
                        .arg("BYLEX")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(budget),
                )
                .await?;
            let full = ids.len() as u32 == budget;
            budget -= ids.len() as u32;
            // A short page reached the end: the next call starts over.
            let next = if full { ids.last().cloned() } else { None };
            self.inner.reconcile_from.set(p, next);
            for id in ids {
                let id: ff_core::ExecutionId = id.parse()?;
                let unsettled = ended_here.clone();
                let report = self
                    .partition_command(p, move |txn, now| {
                        use ff_core::cascade::FlowStore;
                        let Some(exec) = txn.execution(id)? else {
                            return Ok(CascadeReport::default());
                        };
                        let Some(member) = exec.flow.filter(|_| exec.state == State::Blocked)
                        else {
                            return Ok(CascadeReport::default());
                        };
                        // Only nodes whose parents all finished before the
                        // cutoff: younger ones are the listener's to decide.
                        for edge in txn.edges_into(member.flow_id, &member.node_key)? {
                            let Some(node) = txn.node(member.flow_id, &edge.from)? else {
                                continue;
                            };
                            let parent = txn.execution(node.execution_id)?;
                            let settled = parent.is_some_and(|p| {
                                p.state.is_terminal()
                                    && p.finished_at.is_some_and(|t| t <= cutoff)
                                    && !unsettled.contains(&p.id)
                            });
                            if !settled {
                                return Ok(CascadeReport::default());
                            }
                        }
                        cascade::reconcile_node(txn, member.flow_id, &member.node_key, now)
                    })
                    .await?;
                decided += (report.promoted.len() + report.skipped.len()) as u32;
                ended_here.extend(report.skipped.iter().chain(&report.cancelled).copied());
            }
        }
        Ok(decided)
    }
}

#[async_trait]
impl FlowCommands for ValkeyBackend {
    /// Runs in the partition holding the flow. Growing a flow checks every
    /// execution it read, as it runs while the flow's members move on.
    async fn flow_command<T: Send + 'static, C: FlowCommand<T>>(
        &self,
        scope: FlowScope,
        command: C,
    ) -> Result<T, EngineError> {
        let keys = self.keys();
        let (p, check_reads) = match &scope {
            FlowScope::New {
                namespace,
                flow_controlled: true,
                ..
            } => (keys.flow_home(namespace), false),
            FlowScope::New {
                namespace,
                idempotency_key: Some(key),
                ..
            } => (keys.key_partition(namespace, key), false),
            FlowScope::New { .. } => (keys.flow_partition(FlowId::new()), false),
            FlowScope::OfExecution(id) => (keys.exec_partition(*id), true),
            FlowScope::Flow(id) => (keys.flow_partition(*id), false),
        };
        self.partition_command(p, move |txn, now| {
            if check_reads {
                txn.check_reads();
            }
            command(txn, now)
        })
        .await
    }

    async fn cascade_many(
        &self,
        payloads: &[CompletionPayload],
    ) -> Result<Vec<Result<CascadeReport, EngineError>>, EngineError> {
        completion_batch::cascade_batch(
            payloads,
            |solo| async move { self.dispatch_solo(&solo).await },
            |members| async move {
                Ok(
                    futures::future::join_all(members.into_iter().map(|p| self.cascade_one(p)))
                        .await,
                )
            },
            |payload| self.cascade_one(payload),
        )
        .await
    }

    async fn cascade_one(&self, payload: &CompletionPayload) -> Result<CascadeReport, EngineError> {
        if payload.partition >= self.keys().partitions() {
            return Err(EngineError::invalid(
                "partition",
                format!("{} is not a partition here", payload.partition),
            ));
        }
        if payload.flow_id.is_none() {
            let mut answer = self.dispatch_solo(&[payload]).await?;
            return answer
                .pop()
                .unwrap_or_else(|| Err(EngineError::backend("a dispatch went unanswered")));
        }
        let p = payload.partition;
        let payload = payload.clone();
        self.partition_command(p, move |txn, now| {
            txn.prefetch_cascade(&payload)?;
            cascade::cascade(txn, &payload, now)
        })
        .await
    }
}

/// Per partition, the last id a resumable scan returned.
#[derive(Debug, Default)]
pub(crate) struct Cursors(std::sync::Mutex<std::collections::HashMap<u32, String>>);

impl Cursors {
    pub(crate) fn get(&self, p: u32) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&p)
            .cloned()
    }

    pub(crate) fn set(&self, p: u32, id: Option<String>) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match id {
            Some(id) => map.insert(p, id),
            None => map.remove(&p),
        };
    }
}
