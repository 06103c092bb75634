//! What a caller asks for: a flow's nodes, edges, joins and edge conditions,
//! and the fingerprint that tells a replayed node spec from a different one.

use serde::{Deserialize, Serialize};

use crate::execution::{SubmitRequest, DEFAULT_NAMESPACE};
use crate::state::Outcome;

/// When a node with several incoming edges becomes ready.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Join {
    /// Every incoming edge satisfied; skipped as soon as one is dead.
    #[default]
    AllOf,
    /// The first satisfied edge; skipped when all are dead.
    AnyOf,
    /// `n` satisfied edges; skipped once too many are dead for `n`.
    Quorum(u32),
}

/// Which parent outcomes satisfy an edge.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EdgeCondition {
    #[default]
    OnSuccess,
    OnFailure,
    Always,
}

impl EdgeCondition {
    /// Whether a parent ending with `outcome` satisfies the edge (else it is
    /// dead). A cancelled parent satisfies only `always`.
    pub fn satisfied_by(self, outcome: Outcome) -> bool {
        match self {
            EdgeCondition::OnSuccess => outcome == Outcome::Completed,
            EdgeCondition::OnFailure => outcome == Outcome::Failed,
            EdgeCondition::Always => true,
        }
    }
}

/// One node of a flow: its key, what it runs and how it joins.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub key: String,
    /// The execution; its namespace is the flow's and it takes no
    /// idempotency key of its own (the node key plays that part).
    pub execution: SubmitRequest,
    #[serde(default)]
    pub join: Join,
    /// On `any_of`/`quorum`: once ready, cancel parents no one else needs.
    #[serde(default)]
    pub cancel_losers: bool,
}

impl NodeSpec {
    pub fn new(key: impl Into<String>, execution: SubmitRequest) -> Self {
        Self {
            key: key.into(),
            execution,
            join: Join::AllOf,
            cancel_losers: false,
        }
    }

    pub fn join(mut self, join: Join) -> Self {
        self.join = join;
        self
    }

    pub fn cancel_losers(mut self) -> Self {
        self.cancel_losers = true;
        self
    }
}

/// A dependency: `to` waits on `from`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSpec {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub condition: EdgeCondition,
}

impl EdgeSpec {
    pub fn new(from: impl Into<String>, to: impl Into<String>) -> Self {
        Self {
            from: from.into(),
            to: to.into(),
            condition: EdgeCondition::OnSuccess,
        }
    }

    pub fn condition(mut self, condition: EdgeCondition) -> Self {
        self.condition = condition;
        self
    }
}

/// A request to create a flow.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// At the first failure, cancel the rest but the compensation path.
    #[serde(default)]
    pub fail_fast: bool,
    pub nodes: Vec<NodeSpec>,
    #[serde(default)]
    pub edges: Vec<EdgeSpec>,
}

impl FlowSpec {
    pub fn new(nodes: Vec<NodeSpec>, edges: Vec<EdgeSpec>) -> Self {
        Self {
            namespace: None,
            idempotency_key: None,
            fail_fast: false,
            nodes,
            edges,
        }
    }

    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub fn fail_fast(mut self) -> Self {
        self.fail_fast = true;
        self
    }

    pub fn resolved_namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }
}

/// A stable fingerprint of a node spec (FNV-1a over its JSON form), used to
/// tell a replayed dynamic add from a conflicting one.
pub fn spec_hash(node: &NodeSpec) -> u64 {
    let text = serde_json::to_string(node).unwrap_or_default();
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
