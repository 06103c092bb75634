//! What reads and answers return: the created flow, a flow as read back
//! with its nodes, and the filter and summary of a flow list.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::{FlowEdge, FlowRecord, FlowState};
use super::spec::Join;
use crate::clock::Millis;
use crate::error::EngineError;
use crate::execution::DEFAULT_NAMESPACE;
use crate::ids::{ExecutionId, FlowId};
use crate::limits::Limits;
use crate::state::State;

/// The answer to create_flow.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowCreated {
    pub flow_id: FlowId,
    /// False when the idempotency key matched an existing flow.
    pub created: bool,
    /// Node key → execution id.
    pub nodes: BTreeMap<String, ExecutionId>,
}

/// A node as read back, with its execution's state.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    pub key: String,
    pub execution_id: ExecutionId,
    pub state: State,
    pub join: Join,
}

/// A flow with its nodes, edges and derived state.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowView {
    pub id: FlowId,
    pub namespace: String,
    pub state: FlowState,
    pub fail_fast: bool,
    pub created_at: Millis,
    pub nodes: Vec<NodeView>,
    pub edges: Vec<FlowEdge>,
}

impl FlowView {
    /// The view of `record` with its nodes (in creation order) and edges,
    /// the state derived from them.
    pub fn new(record: FlowRecord, nodes: Vec<NodeView>, edges: Vec<FlowEdge>) -> Self {
        Self {
            id: record.id,
            namespace: record.namespace,
            state: FlowState::derive(record.cancelled, nodes.iter().map(|n| n.state)),
            fail_fast: record.fail_fast,
            created_at: record.created_at,
            nodes,
            edges,
        }
    }
}

/// Which flows to list; ordered by id (creation order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowFilter {
    pub namespace: String,
    pub state: Option<FlowState>,
    pub limit: u32,
    pub cursor: Option<String>,
}

impl Default for FlowFilter {
    fn default() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            state: None,
            limit: crate::reads::DEFAULT_PAGE_SIZE,
            cursor: None,
        }
    }
}

impl FlowFilter {
    /// Checks the filter; returns the flow id after which the page starts.
    pub fn validate(&self, limits: &Limits) -> Result<Option<FlowId>, EngineError> {
        limits.check_name("namespace", &self.namespace)?;
        crate::reads::check_page_limit(self.limit, limits)?;
        self.cursor
            .as_deref()
            .map(|c| crate::reads::decode_cursor(c).map(FlowId::from_uuid))
            .transpose()
    }
}

/// A flow in a list.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowSummary {
    pub id: FlowId,
    pub namespace: String,
    pub state: FlowState,
    pub fail_fast: bool,
    pub created_at: Millis,
    pub nodes: u64,
}
