//! Flows: DAGs of executions created atomically, their specification,
//! validation (cycles named) and stored records.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::EngineError;
use crate::execution::{SubmitRequest, DEFAULT_NAMESPACE};
use crate::ids::{ExecutionId, FlowId};
use crate::json::JsonText;
use crate::limits::Limits;
use crate::state::{Outcome, State};

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

    /// Checks the whole spec: names, executions, edges, joins and cycles.
    pub fn validate(&self, limits: &Limits) -> Result<(), EngineError> {
        limits.check_name("namespace", self.resolved_namespace())?;
        if let Some(key) = &self.idempotency_key {
            if key.is_empty() {
                return Err(EngineError::invalid("idempotency_key", "must not be empty"));
            }
            limits.check_size("idempotency_key", key.len(), limits.max_tag_bytes)?;
        }
        if self.nodes.is_empty() {
            return Err(EngineError::invalid(
                "nodes",
                "a flow needs at least one node",
            ));
        }
        validate_graph(
            self.resolved_namespace(),
            &self.nodes,
            &self.edges,
            &[],
            limits,
        )
    }
}

/// Validates new nodes and edges against the keys a flow already has
/// (`existing`): unique keys, valid executions, edges between known nodes,
/// quorums within their incoming edges. Cycles are checked by the caller
/// over the whole graph with [`find_cycle`].
pub fn validate_graph(
    namespace: &str,
    nodes: &[NodeSpec],
    edges: &[EdgeSpec],
    existing: &[String],
    limits: &Limits,
) -> Result<(), EngineError> {
    if nodes.len() + existing.len() > limits.max_flow_nodes {
        return Err(EngineError::invalid(
            "nodes",
            format!("a flow holds at most {} nodes", limits.max_flow_nodes),
        ));
    }
    let mut keys: HashSet<&str> = existing.iter().map(String::as_str).collect();
    for (i, node) in nodes.iter().enumerate() {
        let field = format!("nodes[{i}]");
        limits
            .check_name("key", &node.key)
            .map_err(|e| e.in_field(&field))?;
        if !keys.insert(&node.key) {
            return Err(EngineError::invalid(
                format!("{field}.key"),
                format!("node key `{}` appears twice", node.key),
            ));
        }
        node.execution
            .validate(limits)
            .map_err(|e| e.in_field(&format!("{field}.execution")))?;
        if node.execution.idempotency_key.is_some() {
            return Err(EngineError::invalid(
                format!("{field}.execution.idempotency_key"),
                "flow nodes are deduplicated by their key; use the flow's idempotency key",
            ));
        }
        if node
            .execution
            .namespace
            .as_deref()
            .is_some_and(|ns| ns != namespace)
        {
            return Err(EngineError::invalid(
                format!("{field}.execution.namespace"),
                "a node runs in its flow's namespace",
            ));
        }
    }
    let mut seen = HashSet::new();
    for (i, edge) in edges.iter().enumerate() {
        for end in [&edge.from, &edge.to] {
            if !keys.contains(end.as_str()) {
                return Err(EngineError::invalid(
                    format!("edges[{i}]"),
                    format!("unknown node `{end}`"),
                ));
            }
        }
        if edge.from == edge.to {
            return Err(EngineError::invalid(
                format!("edges[{i}]"),
                format!("cycle: {} -> {}", edge.from, edge.to),
            ));
        }
        if !seen.insert((&edge.from, &edge.to)) {
            return Err(EngineError::invalid(
                format!("edges[{i}]"),
                format!("edge {} -> {} appears twice", edge.from, edge.to),
            ));
        }
    }
    Ok(())
}

/// Checks each quorum against the node's incoming edge count.
pub fn validate_quorums<'a>(
    nodes: impl IntoIterator<Item = (&'a str, Join)>,
    incoming: &HashMap<&str, usize>,
) -> Result<(), EngineError> {
    for (key, join) in nodes {
        if let Join::Quorum(n) = join {
            let edges = incoming.get(key).copied().unwrap_or(0);
            if n == 0 || n as usize > edges {
                return Err(EngineError::invalid(
                    "join",
                    format!("node `{key}`: quorum({n}) needs 1..={edges} (its incoming edges)"),
                ));
            }
        }
    }
    Ok(())
}

/// Finds a cycle among `edges` (pairs of node keys) and names it as
/// `a -> b -> c -> a`.
pub fn find_cycle<'a>(edges: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges {
        out.entry(from).or_default().push(to);
        out.entry(to).or_default();
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark: HashMap<&str, Mark> = out.keys().map(|k| (*k, Mark::New)).collect();
    for start in out.keys().copied() {
        if mark[start] != Mark::New {
            continue;
        }
        // Iterative DFS; `path` holds the open nodes in order.
        let mut stack = vec![(start, 0usize)];
        let mut path = vec![start];
        mark.insert(start, Mark::Open);
        while let Some((node, next)) = stack.last_mut() {
            let children = &out[*node];
            if *next == children.len() {
                mark.insert(node, Mark::Done);
                stack.pop();
                path.pop();
                continue;
            }
            let child = children[*next];
            *next += 1;
            match mark[child] {
                Mark::Open => {
                    let from = path.iter().position(|k| *k == child).unwrap_or(0);
                    let mut cycle: Vec<&str> = path[from..].to_vec();
                    cycle.push(child);
                    return Some(cycle.join(" -> "));
                }
                Mark::New => {
                    mark.insert(child, Mark::Open);
                    stack.push((child, 0));
                    path.push(child);
                }
                Mark::Done => {}
            }
        }
    }
    None
}

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

/// A stable fingerprint of a node spec (FNV-1a over its JSON form), used to
/// tell a replayed dynamic add from a conflicting one.
pub fn spec_hash(node: &NodeSpec) -> u64 {
    let text = serde_json::to_string(node).unwrap_or_default();
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_names_a_cycle() {
        let edges = [("a", "b"), ("b", "c"), ("c", "d"), ("d", "b")];
        assert_eq!(find_cycle(edges).as_deref(), Some("b -> c -> d -> b"));
        assert_eq!(
            find_cycle([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]),
            None
        );
    }

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
