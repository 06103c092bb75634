//! What a backend stores for a flow: its lifecycle state and the rule that
//! derives it, the flow, node and edge records, and the inputs a parent hands
//! to a child that becomes ready.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::spec::{EdgeCondition, EdgeSpec, Join};
use crate::clock::Millis;
use crate::error::EngineError;
use crate::ids::{ExecutionId, FlowId};
use crate::json::JsonText;
use crate::state::{Outcome, State};

/// A flow's lifecycle as stored: running until cancelled or every member is
/// terminal.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowState {
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl FlowState {
    pub fn is_terminal(self) -> bool {
        self != FlowState::Running
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FlowState::Running => "running",
            FlowState::Completed => "completed",
            FlowState::Failed => "failed",
            FlowState::Cancelled => "cancelled",
        }
    }

    /// The derived outcome: `cancelled` after `cancel_flow`; otherwise, once
    /// every member is terminal, `failed` if any failed, else `completed`.
    pub fn derive(cancelled: bool, members: impl IntoIterator<Item = State>) -> FlowState {
        if cancelled {
            return FlowState::Cancelled;
        }
        let mut failed = false;
        for state in members {
            match state.outcome() {
                None => return FlowState::Running,
                Some(Outcome::Failed) => failed = true,
                Some(_) => {}
            }
        }
        if failed {
            FlowState::Failed
        } else {
            FlowState::Completed
        }
    }
}

impl std::str::FromStr for FlowState {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            FlowState::Running,
            FlowState::Completed,
            FlowState::Failed,
            FlowState::Cancelled,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
        .ok_or_else(|| EngineError::invalid("state", format!("unknown flow state `{s}`")))
    }
}

/// The stored flow record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    pub id: FlowId,
    pub namespace: String,
    pub idempotency_key: Option<String>,
    pub fail_fast: bool,
    /// Set by `cancel_flow`; nothing is promoted after it.
    pub cancelled: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A stored node: which execution runs it and how it joins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowNode {
    pub key: String,
    pub execution_id: ExecutionId,
    pub join: Join,
    pub cancel_losers: bool,
    /// A fingerprint of the spec the node was added with, so a replayed add
    /// is recognized and a different one refused.
    pub spec_hash: u64,
}

/// A stored edge.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FlowEdge {
    pub from: String,
    pub to: String,
    pub condition: EdgeCondition,
}

impl From<&EdgeSpec> for FlowEdge {
    fn from(edge: &EdgeSpec) -> Self {
        Self {
            from: edge.from.clone(),
            to: edge.to.clone(),
            condition: edge.condition,
        }
    }
}

/// What a parent handed to a child that became ready.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInput {
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<JsonText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Node key → what that parent ended with.
pub type Inputs = BTreeMap<String, NodeInput>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_flow_state() {
        use State::*;
        assert_eq!(
            FlowState::derive(false, [Completed, Running]),
            FlowState::Running
        );
        assert_eq!(
            FlowState::derive(false, [Completed, Skipped]),
            FlowState::Completed
        );
        assert_eq!(
            FlowState::derive(false, [Completed, Failed, Cancelled]),
            FlowState::Failed
        );
        assert_eq!(FlowState::derive(true, [Running]), FlowState::Cancelled);
    }
}
