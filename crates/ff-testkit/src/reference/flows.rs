//! `FlowCommands` (from which `ff_core` derives `FlowOps`) and the flow
//! reads for the reference backend: the `ff-core` flow algorithms over the
//! in-memory store.

use async_trait::async_trait;
use ff_core::cascade::{self, CascadeReport, FlowStore};
use ff_core::flow::{FlowEdge, FlowFilter, FlowNode, FlowRecord, FlowSummary, FlowView, NodeView};
use ff_core::{
    CompletionPayload, EngineError, Execution, ExecutionId, FlowCommand, FlowCommands, FlowId,
    FlowScope, Millis, Page, State,
};

use super::{Effects, ReferenceBackend, Store};

/// The store as the flow algorithms see it during one locked call.
struct Txn<'a> {
    store: &'a mut Store,
    effects: &'a mut Effects,
    now: Millis,
}

impl FlowStore for Txn<'_> {
    fn execution(&mut self, id: ExecutionId) -> Result<Option<Execution>, EngineError> {
        Ok(self.store.executions.get(&id).cloned())
    }

    fn insert_execution(&mut self, exec: &Execution) -> Result<(), EngineError> {
        self.effects.work_ready |= exec.state == State::Ready;
        self.store.executions.insert(exec.id, exec.clone());
        Ok(())
    }

    fn save_execution(&mut self, exec: &Execution, before: State) -> Result<(), EngineError> {
        self.store.executions.insert(exec.id, exec.clone());
        if before != exec.state && exec.state == State::Ready {
            self.effects.work_ready = true;
        }
        if !before.is_terminal() && exec.state.is_terminal() {
            self.store.record_completion(exec, self.now, self.effects);
        }
        Ok(())
    }

    fn flow(&mut self, id: FlowId) -> Result<Option<FlowRecord>, EngineError> {
        Ok(self.store.flows.get(&id).map(|f| f.record.clone()))
    }

    fn flow_by_key(&mut self, namespace: &str, key: &str) -> Result<Option<FlowId>, EngineError> {
        Ok(self
            .store
            .flow_keys
            .get(&(namespace.to_owned(), key.to_owned()))
            .copied())
    }

    fn insert_flow(&mut self, flow: &FlowRecord) -> Result<(), EngineError> {
        if let Some(key) = &flow.idempotency_key {
            self.store
                .flow_keys
                .insert((flow.namespace.clone(), key.clone()), flow.id);
        }
        self.store
            .flows
            .insert(flow.id, super::StoredFlow::new(flow.clone()));
        Ok(())
    }

    fn update_flow(&mut self, flow: &FlowRecord) -> Result<(), EngineError> {
        self.store.flow_mut(flow.id)?.record = flow.clone();
        Ok(())
    }

    fn nodes(&mut self, flow: FlowId) -> Result<Vec<FlowNode>, EngineError> {
        Ok(self.store.flow_mut(flow)?.nodes.clone())
    }

    fn node(&mut self, flow: FlowId, key: &str) -> Result<Option<FlowNode>, EngineError> {
        Ok(self
            .store
            .flow_mut(flow)?
            .nodes
            .iter()
            .find(|n| n.key == key)
            .cloned())
    }

    fn insert_node(&mut self, flow: FlowId, node: &FlowNode) -> Result<(), EngineError> {
        self.store.flow_mut(flow)?.nodes.push(node.clone());
        Ok(())
    }

    fn edges(&mut self, flow: FlowId) -> Result<Vec<FlowEdge>, EngineError> {
        Ok(self.store.flow_mut(flow)?.edges.clone())
    }

    fn edges_from(&mut self, flow: FlowId, key: &str) -> Result<Vec<FlowEdge>, EngineError> {
        Ok(self
            .store
            .flow_mut(flow)?
            .edges
            .iter()
            .filter(|e| e.from == key)
            .cloned()
            .collect())
    }

    fn edges_into(&mut self, flow: FlowId, key: &str) -> Result<Vec<FlowEdge>, EngineError> {
        Ok(self
            .store
            .flow_mut(flow)?
            .edges
            .iter()
            .filter(|e| e.to == key)
            .cloned()
            .collect())
    }

    fn insert_edge(&mut self, flow: FlowId, edge: &FlowEdge) -> Result<(), EngineError> {
        self.store.flow_mut(flow)?.edges.push(edge.clone());
        Ok(())
    }

    fn claim_outbox(&mut self, _partition: u32, seq: u64) -> Result<bool, EngineError> {
        let entry = seq
            .checked_sub(1)
            .and_then(|i| self.store.outbox.get_mut(i as usize))
            .and_then(Option::as_mut);
        Ok(match entry {
            Some(entry) if !entry.dispatched => {
                entry.dispatched = true;
                true
            }
            _ => false,
        })
    }
}

impl ReferenceBackend {
    /// Runs a flow algorithm atomically: on an error the store is restored.
    fn flow_txn<T>(
        &self,
        f: impl FnOnce(&mut Txn<'_>) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let now = self.now();
        self.with_store(|store, effects| {
            let backup = store.clone();
            let mut txn = Txn {
                store,
                effects,
                now,
            };
            let out = f(&mut txn);
            if out.is_err() {
                *store = backup;
                *effects = Effects::default();
            }
            out
        })
    }

    pub(super) fn flow_view(&self, id: FlowId) -> Result<FlowView, EngineError> {
        self.with_store(|store, _| {
            let flow = store.flow_mut(id)?;
            let (record, nodes, edges) =
                (flow.record.clone(), flow.nodes.clone(), flow.edges.clone());
            let nodes: Vec<NodeView> = nodes
                .into_iter()
                .filter_map(|n| {
                    let state = store.executions.get(&n.execution_id)?.state;
                    Some(NodeView {
                        key: n.key,
                        execution_id: n.execution_id,
                        state,
                        join: n.join,
                    })
                })
                .collect();
            Ok(FlowView::new(record, nodes, edges))
        })
    }

    pub(super) fn flow_page(&self, filter: &FlowFilter) -> Result<Page<FlowSummary>, EngineError> {
        let after = filter.validate(&self.inner.limits)?;
        let ids: Vec<FlowId> = self.with_store(|store, _| {
            store
                .flows
                .values()
                .filter(|f| f.record.namespace == filter.namespace)
                .filter(|f| after.is_none_or(|a| f.record.id > a))
                .map(|f| f.record.id)
                .collect()
        });
        let mut items = Vec::new();
        for id in ids {
            let view = self.flow_view(id)?;
            if filter.state.is_none_or(|s| s == view.state) {
                items.push(FlowSummary {
                    id,
                    namespace: view.namespace,
                    state: view.state,
                    fail_fast: view.fail_fast,
                    created_at: view.created_at,
                    nodes: view.nodes.len() as u64,
                });
                if items.len() > filter.limit as usize {
                    break;
                }
            }
        }
        Ok(Page::from_overfetch(items, filter.limit))
    }
}

#[async_trait]
impl FlowCommands for ReferenceBackend {
    async fn flow_command<T: Send + 'static, C: FlowCommand<T>>(
        &self,
        _scope: FlowScope,
        command: C,
    ) -> Result<T, EngineError> {
        self.flow_txn(|txn| {
            let now = txn.now;
            command(txn, now)
        })
    }

    async fn cascade_one(&self, payload: &CompletionPayload) -> Result<CascadeReport, EngineError> {
        self.flow_txn(|txn| {
            let now = txn.now;
            cascade::cascade(txn, payload, now)
        })
    }
}

impl ReferenceBackend {
    /// Decides blocked nodes whose parents all finished at or before `cutoff`.
    pub(super) fn reconcile_blocked_nodes(
        &self,
        cutoff: Millis,
        limit: u32,
    ) -> Result<u32, EngineError> {
        let stuck: Vec<(FlowId, String)> = self.with_store(|store, _| {
            let mut stuck = Vec::new();
            for flow in store.flows.values() {
                for node in &flow.nodes {
                    let blocked = store
                        .executions
                        .get(&node.execution_id)
                        .is_some_and(|e| e.state == State::Blocked);
                    let parents_done = flow.edges.iter().filter(|e| e.to == node.key).all(|e| {
                        flow.nodes
                            .iter()
                            .find(|n| n.key == e.from)
                            .and_then(|n| store.executions.get(&n.execution_id))
                            .is_some_and(|p| {
                                p.state.is_terminal()
                                    && p.finished_at.is_some_and(|at| at <= cutoff)
                            })
                    });
                    if blocked && parents_done && stuck.len() < limit as usize {
                        stuck.push((flow.record.id, node.key.clone()));
                    }
                }
            }
            stuck
        });
        let mut decided = 0;
        for (flow, key) in stuck {
            let report = self.flow_txn(|txn| {
                let now = txn.now;
                cascade::reconcile_node(txn, flow, &key, now)
            })?;
            decided += (report.promoted.len() + report.skipped.len()) as u32;
        }
        Ok(decided)
    }
}
