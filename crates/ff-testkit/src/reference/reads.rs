//! `ReadOps` for the reference backend.

use std::collections::BTreeMap;
use std::ops::Bound;

use async_trait::async_trait;
use ff_core::flow::{FlowFilter, FlowSummary, FlowView};
use ff_core::{
    BackendDescription, EngineError, Execution, ExecutionId, FlowId, LaneStateCount, ListFilter,
    Page, ReadOps,
};

use super::ReferenceBackend;

#[async_trait]
impl ReadOps for ReferenceBackend {
    async fn get_execution(&self, id: ExecutionId) -> Result<Execution, EngineError> {
        self.with_store(|store, _| {
            store
                .executions
                .get(&id)
                .cloned()
                .ok_or_else(|| EngineError::execution_not_found(id))
        })
    }

    async fn count_ahead(&self, exec: &Execution) -> Result<u64, EngineError> {
        let now = self.now();
        let key = exec.order_key();
        Ok(self.with_store(|store, _| {
            store
                .executions
                .values()
                .filter(|e| e.namespace == exec.namespace && e.lane == exec.lane)
                .filter(|e| e.is_claimable(now) && e.order_key() < key)
                .count() as u64
        }))
    }

    async fn list_executions(&self, filter: &ListFilter) -> Result<Page<Execution>, EngineError> {
        let after = filter.validate(&self.inner.limits)?;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let items = self.with_store(|store, _| {
            store
                .executions
                .range((start, Bound::Unbounded))
                .map(|(_, e)| e)
                .filter(|e| filter.matches(e))
                .take(filter.limit as usize + 1)
                .cloned()
                .collect()
        });
        Ok(Page::from_overfetch(items, filter.limit))
    }

    async fn count_by_lane_and_state(
        &self,
        namespace: &str,
    ) -> Result<Vec<LaneStateCount>, EngineError> {
        self.inner.limits.check_name("namespace", namespace)?;
        let counts = self.with_store(|store, _| {
            let mut counts = BTreeMap::new();
            for e in store
                .executions
                .values()
                .filter(|e| e.namespace == namespace)
            {
                *counts.entry((e.lane.clone(), e.state)).or_insert(0u64) += 1;
            }
            counts
        });
        Ok(counts
            .into_iter()
            .map(|((lane, state), count)| LaneStateCount { lane, state, count })
            .collect())
    }

    async fn get_flow(&self, id: FlowId) -> Result<FlowView, EngineError> {
        self.flow_view(id)
    }

    async fn list_flows(&self, filter: &FlowFilter) -> Result<Page<FlowSummary>, EngineError> {
        self.flow_page(filter)
    }

    /// In memory: nothing is durable.
    async fn describe(&self) -> Result<BackendDescription, EngineError> {
        Ok(BackendDescription {
            name: "reference".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            durability: "none (in memory)".to_owned(),
        })
    }
}
