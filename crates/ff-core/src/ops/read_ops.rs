//! `ReadOps`: lookups, lists and counts.

use async_trait::async_trait;

use crate::error::EngineError;
use crate::execution::Execution;
use crate::flow::{FlowFilter, FlowSummary, FlowView};
use crate::ids::{ExecutionId, FlowId};
use crate::reads::{BackendDescription, LaneStateCount, ListFilter, Page};

#[async_trait]
pub trait ReadOps: Send + Sync {
    /// One execution; `NotFound` when unknown.
    async fn get_execution(&self, id: ExecutionId) -> Result<Execution, EngineError>;

    /// A page of executions matching `filter`, in id order.
    async fn list_executions(&self, filter: &ListFilter) -> Result<Page<Execution>, EngineError>;

    /// How many executions each lane of `namespace` holds in each state
    /// (only non-zero counts, sorted by lane then state).
    async fn count_by_lane_and_state(
        &self,
        namespace: &str,
    ) -> Result<Vec<LaneStateCount>, EngineError>;

    /// Roughly how many claimable executions of `exec`'s namespace and lane
    /// a claim takes before it (higher priority, or the same priority and
    /// ready earlier).
    async fn count_ahead(&self, exec: &Execution) -> Result<u64, EngineError>;

    /// A flow with its nodes (and their states), edges and derived state.
    async fn get_flow(&self, id: FlowId) -> Result<FlowView, EngineError>;

    /// A page of flows matching `filter`, in id order.
    async fn list_flows(&self, filter: &FlowFilter) -> Result<Page<FlowSummary>, EngineError>;

    /// What the backend runs on (its server or library version and the
    /// durability writes are committed with), for reports and logs.
    async fn describe(&self) -> Result<BackendDescription, EngineError>;
}
