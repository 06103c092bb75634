//! The flow algorithms — create, cascade a completion, cancel, fail fast,
//! add nodes — written once over [`FlowStore`], the few reads and writes a
//! backend offers inside its own atomic step (an SQL transaction, a locked
//! map). The backend runs each whole call in one such step.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::clock::Millis;
use crate::completion::CompletionPayload;
use crate::error::EngineError;
use crate::execution::{Execution, FlowMembership};
use crate::flow::{
    find_cycle, spec_hash, validate_graph, validate_quorums, EdgeSpec, FlowCreated, FlowEdge,
    FlowNode, FlowRecord, FlowSpec, FlowState, Inputs, Join, NodeInput, NodeSpec,
};
use crate::ids::{ExecutionId, FlowId};
use crate::join::{evaluate, JoinDecision};
use crate::lease::{fence, Fence, LeaseHandle, WorkerOp};
use crate::lifecycle;
use crate::limits::Limits;
use crate::state::{Outcome, State};

/// What a backend offers the flow algorithms, inside one atomic step.
pub trait FlowStore {
    fn execution(&mut self, id: ExecutionId) -> Result<Option<Execution>, EngineError>;
    fn insert_execution(&mut self, exec: &Execution) -> Result<(), EngineError>;
    /// Writes a changed execution. When `before` was not terminal and the
    /// execution now is, the backend records its outbox entry in the same
    /// step; when it became ready, the backend wakes waiting workers.
    fn save_execution(&mut self, exec: &Execution, before: State) -> Result<(), EngineError>;

    fn flow(&mut self, id: FlowId) -> Result<Option<FlowRecord>, EngineError>;
    fn flow_by_key(&mut self, namespace: &str, key: &str) -> Result<Option<FlowId>, EngineError>;
    fn insert_flow(&mut self, flow: &FlowRecord) -> Result<(), EngineError>;
    fn update_flow(&mut self, flow: &FlowRecord) -> Result<(), EngineError>;

    fn nodes(&mut self, flow: FlowId) -> Result<Vec<FlowNode>, EngineError>;
    fn node(&mut self, flow: FlowId, key: &str) -> Result<Option<FlowNode>, EngineError>;
    fn insert_node(&mut self, flow: FlowId, node: &FlowNode) -> Result<(), EngineError>;
    fn edges(&mut self, flow: FlowId) -> Result<Vec<FlowEdge>, EngineError>;
    fn edges_from(&mut self, flow: FlowId, key: &str) -> Result<Vec<FlowEdge>, EngineError>;
    fn edges_into(&mut self, flow: FlowId, key: &str) -> Result<Vec<FlowEdge>, EngineError>;
    fn insert_edge(&mut self, flow: FlowId, edge: &FlowEdge) -> Result<(), EngineError>;

    /// Marks the outbox entry dispatched; false when it already was (or is
    /// unknown), which makes a duplicate cascade a no-op.
    fn claim_outbox(&mut self, partition: u32, seq: u64) -> Result<bool, EngineError>;

    /// The id for a new flow. A partitioned backend overrides it (and
    /// [`FlowStore::new_execution_id`]) so a flow and its members land in
    /// one partition.
    fn new_flow_id(&mut self) -> FlowId {
        FlowId::new()
    }

    /// The id for a new member of the flow this step works on.
    fn new_execution_id(&mut self) -> ExecutionId {
        ExecutionId::new()
    }
}

/// What one cascade did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CascadeReport {
    /// False when the entry was already dispatched: nothing was done.
    pub dispatched: bool,
    /// Children made ready (or scheduled), in edge order.
    pub promoted: Vec<ExecutionId>,
    pub skipped: Vec<ExecutionId>,
    pub cancelled: Vec<ExecutionId>,
    /// When the cascade committed, by the backend's clock: with the
    /// payload's `committed_at`, the promotion lag on one clock.
    pub cascaded_at: Millis,
}

/// The answer to `cancel_flow`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FlowCancelResponse {
    pub state: FlowState,
    /// False when the flow was already terminal.
    pub changed: bool,
}

fn load<S: FlowStore + ?Sized>(store: &mut S, id: ExecutionId) -> Result<Execution, EngineError> {
    store
        .execution(id)
        .and_then(|e| e.ok_or_else(|| EngineError::execution_not_found(id)))
}

fn load_flow<S: FlowStore + ?Sized>(store: &mut S, id: FlowId) -> Result<FlowRecord, EngineError> {
    store.flow(id)?.ok_or_else(|| EngineError::NotFound {
        entity: "flow",
        id: id.to_string(),
    })
}

fn load_node<S: FlowStore + ?Sized>(
    store: &mut S,
    flow: FlowId,
    key: &str,
) -> Result<FlowNode, EngineError> {
    store.node(flow, key)?.ok_or_else(|| EngineError::NotFound {
        entity: "flow node",
        id: format!("{flow}/{key}"),
    })
}

/// Builds a member execution: blocked when it waits on edges.
fn member(
    id: ExecutionId,
    flow: &FlowRecord,
    node: &NodeSpec,
    blocked: bool,
    now: Millis,
) -> Execution {
    let mut req = node.execution.clone();
    req.namespace = Some(flow.namespace.clone());
    let mut exec = Execution::new(id, req, now);
    exec.flow = Some(FlowMembership {
        flow_id: flow.id,
        node_key: node.key.clone(),
    });
    if blocked {
        exec.state = State::Blocked;
    }
    exec
}

/// Stores new nodes (each with its member execution, blocked when it has
/// incoming edges) and edges; records each node's execution id in `ids`.
fn insert_graph<S: FlowStore + ?Sized>(
    store: &mut S,
    flow: &FlowRecord,
    nodes: &[NodeSpec],
    edges: &[EdgeSpec],
    incoming: &HashMap<&str, usize>,
    now: Millis,
    ids: &mut BTreeMap<String, ExecutionId>,
) -> Result<(), EngineError> {
    for node in nodes {
        let id = store.new_execution_id();
        let exec = member(
            id,
            flow,
            node,
            incoming.contains_key(node.key.as_str()),
            now,
        );
        store.insert_execution(&exec)?;
        store.insert_node(
            flow.id,
            &FlowNode {
                key: node.key.clone(),
                execution_id: exec.id,
                join: node.join,
                cancel_losers: node.cancel_losers,
                spec_hash: spec_hash(node),
            },
        )?;
        ids.insert(node.key.clone(), exec.id);
    }
    for edge in edges {
        store.insert_edge(flow.id, &FlowEdge::from(edge))?;
    }
    Ok(())
}

/// Counts incoming edges per node key.
fn incoming_counts<'a>(
    edges: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> HashMap<&'a str, usize> {
    let mut counts = HashMap::new();
    for (_, to) in edges {
        *counts.entry(to).or_insert(0) += 1;
    }
    counts
}

fn cycle_error(cycle: String) -> EngineError {
    EngineError::invalid("edges", format!("cycle: {cycle}"))
}

/// Creates a flow and its members atomically; a known idempotency key
/// returns the existing flow.
pub fn create_flow<S: FlowStore + ?Sized>(
    store: &mut S,
    spec: FlowSpec,
    limits: &Limits,
    now: Millis,
) -> Result<FlowCreated, EngineError> {
    spec.validate(limits)?;
    let namespace = spec.resolved_namespace().to_owned();
    if let Some(key) = &spec.idempotency_key {
        if let Some(id) = store.flow_by_key(&namespace, key)? {
            let nodes = store
                .nodes(id)?
                .into_iter()
                .map(|n| (n.key, n.execution_id))
                .collect();
            return Ok(FlowCreated {
                flow_id: id,
                created: false,
                nodes,
            });
        }
    }
    if let Some(cycle) = find_cycle(spec.edges.iter().map(|e| (e.from.as_str(), e.to.as_str()))) {
        return Err(cycle_error(cycle));
    }
    let incoming = incoming_counts(spec.edges.iter().map(|e| (e.from.as_str(), e.to.as_str())));
    validate_quorums(
        spec.nodes.iter().map(|n| (n.key.as_str(), n.join)),
        &incoming,
    )?;

    let flow = FlowRecord {
        id: store.new_flow_id(),
        namespace,
        idempotency_key: spec.idempotency_key.clone(),
        fail_fast: spec.fail_fast,
        cancelled: false,
        created_at: now,
        updated_at: now,
    };
    store.insert_flow(&flow)?;
    let mut nodes = BTreeMap::new();
    insert_graph(
        store,
        &flow,
        &spec.nodes,
        &spec.edges,
        &incoming,
        now,
        &mut nodes,
    )?;
    Ok(FlowCreated {
        flow_id: flow.id,
        created: true,
        nodes,
    })
}

/// Applies one completion to its flow: claims the outbox entry, then
/// evaluates the join of every blocked child of the completed node, applies
/// fail-fast, and cancels losers. A duplicate is a no-op.
pub fn cascade<S: FlowStore + ?Sized>(
    store: &mut S,
    payload: &CompletionPayload,
    now: Millis,
) -> Result<CascadeReport, EngineError> {
    let mut report = CascadeReport {
        cascaded_at: now,
        ..CascadeReport::default()
    };
    if !store.claim_outbox(payload.partition, payload.seq)? {
        return Ok(report);
    }
    report.dispatched = true;
    let (Some(flow_id), Some(node_key)) = (payload.flow_id, payload.node_key.as_deref()) else {
        return Ok(report);
    };
    let flow = load_flow(store, flow_id)?;
    if flow.cancelled {
        return Ok(report);
    }
    if flow.fail_fast && payload.outcome == Outcome::Failed {
        fail_fast(store, &flow, node_key, now, &mut report)?;
    }
    let children: Vec<String> = store
        .edges_from(flow_id, node_key)?
        .into_iter()
        .map(|e| e.to)
        .collect();
    for child in children {
        decide_child(store, &flow, &child, now, &mut report)?;
    }
    Ok(report)
}

/// Evaluates a blocked node's join and promotes or skips it.
fn decide_child<S: FlowStore + ?Sized>(
    store: &mut S,
    flow: &FlowRecord,
    key: &str,
    now: Millis,
    report: &mut CascadeReport,
) -> Result<(), EngineError> {
    let node = load_node(store, flow.id, key)?;
    let mut child = load(store, node.execution_id)?;
    if child.state != State::Blocked {
        return Ok(());
    }
    let incoming = store.edges_into(flow.id, key)?;
    let mut parents = Vec::with_capacity(incoming.len());
    for edge in &incoming {
        let parent_node = load_node(store, flow.id, &edge.from)?;
        parents.push((edge.condition, load(store, parent_node.execution_id)?));
    }
    let outcomes: Vec<_> = parents.iter().map(|(c, p)| (*c, p.outcome())).collect();
    match evaluate(node.join, &outcomes) {
        JoinDecision::Wait => {}
        JoinDecision::Skip => {
            lifecycle::skip(&mut child, now);
            store.save_execution(&child, State::Blocked)?;
            report.skipped.push(child.id);
        }
        JoinDecision::Ready => {
            let inputs: Inputs = parents
                .iter()
                .filter_map(|(_, p)| {
                    let outcome = p.outcome()?;
                    let key = p.flow.as_ref()?.node_key.clone();
                    Some((
                        key,
                        NodeInput {
                            outcome,
                            result: p.result.clone(),
                            error: (outcome != Outcome::Completed)
                                .then(|| p.error.clone())
                                .flatten(),
                        },
                    ))
                })
                .collect();
            lifecycle::unblock(&mut child, inputs, now);
            store.save_execution(&child, State::Blocked)?;
            report.promoted.push(child.id);
            if node.cancel_losers && node.join != Join::AllOf {
                let losers: Vec<String> = parents
                    .iter()
                    .filter(|(_, p)| !p.state.is_terminal())
                    .filter_map(|(_, p)| p.flow.as_ref().map(|f| f.node_key.clone()))
                    .collect();
                cancel_losers(store, flow, key, &losers, now, report)?;
            }
        }
    }
    Ok(())
}

/// Cancels each loser unless another non-terminal node has an edge from it.
fn cancel_losers<S: FlowStore + ?Sized>(
    store: &mut S,
    flow: &FlowRecord,
    winner: &str,
    losers: &[String],
    now: Millis,
    report: &mut CascadeReport,
) -> Result<(), EngineError> {
    'losers: for loser in losers {
        for edge in store.edges_from(flow.id, loser)? {
            if edge.to == winner {
                continue;
            }
            let other = load_node(store, flow.id, &edge.to)?;
            if !load(store, other.execution_id)?.state.is_terminal() {
                continue 'losers;
            }
        }
        let node = load_node(store, flow.id, loser)?;
        cancel_member(store, node.execution_id, now, report)?;
    }
    Ok(())
}

fn cancel_member<S: FlowStore + ?Sized>(
    store: &mut S,
    id: ExecutionId,
    now: Millis,
    report: &mut CascadeReport,
) -> Result<(), EngineError> {
    let mut exec = load(store, id)?;
    let before = exec.state;
    if lifecycle::cancel(&mut exec, now).changed {
        store.save_execution(&exec, before)?;
        report.cancelled.push(id);
    }
    Ok(())
}

/// At a failure in a fail-fast flow, cancels every non-terminal member but
/// the compensation path: targets of edges the failure satisfies, and all
/// their descendants.
fn fail_fast<S: FlowStore + ?Sized>(
    store: &mut S,
    flow: &FlowRecord,
    failed: &str,
    now: Millis,
    report: &mut CascadeReport,
) -> Result<(), EngineError> {
    let edges = store.edges(flow.id)?;
    let mut spared: HashSet<&str> = HashSet::new();
    let mut queue: VecDeque<&str> = edges
        .iter()
        .filter(|e| e.from == failed && e.condition.satisfied_by(Outcome::Failed))
        .map(|e| e.to.as_str())
        .collect();
    while let Some(key) = queue.pop_front() {
        if spared.insert(key) {
            queue.extend(
                edges
                    .iter()
                    .filter(|e| e.from == key)
                    .map(|e| e.to.as_str()),
            );
        }
    }
    for node in store.nodes(flow.id)? {
        if !spared.contains(node.key.as_str()) {
            cancel_member(store, node.execution_id, now, report)?;
        }
    }
    Ok(())
}

/// Cancels a flow in one step: marks it cancelled, then cancels every
/// non-terminal member. On a terminal flow it changes nothing.
pub fn cancel_flow<S: FlowStore + ?Sized>(
    store: &mut S,
    flow_id: FlowId,
    now: Millis,
) -> Result<FlowCancelResponse, EngineError> {
    let mut flow = load_flow(store, flow_id)?;
    let nodes = store.nodes(flow_id)?;
    let mut members = Vec::with_capacity(nodes.len());
    for node in &nodes {
        members.push(load(store, node.execution_id)?);
    }
    let state = FlowState::derive(flow.cancelled, members.iter().map(|e| e.state));
    if state.is_terminal() {
        return Ok(FlowCancelResponse {
            state,
            changed: false,
        });
    }
    flow.cancelled = true;
    flow.updated_at = now;
    store.update_flow(&flow)?;
    for mut exec in members {
        let before = exec.state;
        if lifecycle::cancel(&mut exec, now).changed {
            store.save_execution(&exec, before)?;
        }
    }
    Ok(FlowCancelResponse {
        state: FlowState::Cancelled,
        changed: true,
    })
}

/// The answer to add_nodes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodesAdded {
    /// Node key → execution id, for every node named in the request.
    pub nodes: BTreeMap<String, ExecutionId>,
}

/// Adds nodes and edges to a running flow, fenced by the handle of a running
/// member. Idempotent by node key: the same spec answers the same ids, a
/// different one is a `Conflict`. Edges from already terminal parents are
/// evaluated at once.
pub fn add_nodes<S: FlowStore + ?Sized>(
    store: &mut S,
    handle: &LeaseHandle,
    nodes: Vec<NodeSpec>,
    edges: Vec<EdgeSpec>,
    limits: &Limits,
    now: Millis,
) -> Result<Result<NodesAdded, EngineError>, EngineError> {
    let mut adder = load(store, handle.execution_id)?;
    let before = adder.state;
    match fence(&mut adder, handle, WorkerOp::AddNodes, now) {
        Fence::Proceed => {}
        Fence::Expired => {
            store.save_execution(&adder, before)?;
            return Ok(Err(EngineError::LeaseLost));
        }
        Fence::Refuse(err) => return Ok(Err(err)),
        Fence::Replay => return Ok(Err(EngineError::LeaseLost)),
    }
    let Some(membership) = adder.flow.clone() else {
        return Ok(Err(EngineError::conflict(
            "only a flow member can add nodes to its flow",
        )));
    };
    let flow = load_flow(store, membership.flow_id)?;
    if flow.cancelled {
        return Ok(Err(EngineError::NotActive {
            outcome: Outcome::Cancelled,
        }));
    }
    let existing = store.nodes(flow.id)?;
    let by_key: HashMap<&str, &FlowNode> = existing.iter().map(|n| (n.key.as_str(), n)).collect();
    let mut fresh = Vec::new();
    let mut added = BTreeMap::new();
    for node in nodes {
        match by_key.get(node.key.as_str()) {
            Some(known) if known.spec_hash == spec_hash(&node) => {
                added.insert(node.key.clone(), known.execution_id);
            }
            Some(_) => {
                return Ok(Err(EngineError::conflict(format!(
                    "node `{}` already exists with a different spec",
                    node.key
                ))))
            }
            None => fresh.push(node),
        }
    }
    let existing_keys: Vec<String> = existing.iter().map(|n| n.key.clone()).collect();
    let old_edges = store.edges(flow.id)?;
    let known_edges: HashMap<(&str, &str), &FlowEdge> = old_edges
        .iter()
        .map(|e| ((e.from.as_str(), e.to.as_str()), e))
        .collect();
    let mut new_edges = Vec::new();
    for edge in &edges {
        match known_edges.get(&(edge.from.as_str(), edge.to.as_str())) {
            Some(known) if known.condition == edge.condition => {}
            Some(_) => {
                return Ok(Err(EngineError::conflict(format!(
                    "edge {} -> {} already exists with another condition",
                    edge.from, edge.to
                ))))
            }
            None => new_edges.push(edge.clone()),
        }
    }
    if let Err(err) = validate_graph(&flow.namespace, &fresh, &new_edges, &existing_keys, limits) {
        return Ok(Err(err));
    }
    let fresh_keys: HashSet<&str> = fresh.iter().map(|n| n.key.as_str()).collect();
    for edge in &new_edges {
        if !fresh_keys.contains(edge.to.as_str()) {
            return Ok(Err(EngineError::conflict(format!(
                "node `{}` already exists; new edges may only lead to new nodes",
                edge.to
            ))));
        }
    }
    let all_edges = old_edges
        .iter()
        .map(|e| (e.from.as_str(), e.to.as_str()))
        .chain(new_edges.iter().map(|e| (e.from.as_str(), e.to.as_str())));
    if let Some(cycle) = find_cycle(all_edges) {
        return Ok(Err(cycle_error(cycle)));
    }
    let incoming = incoming_counts(new_edges.iter().map(|e| (e.from.as_str(), e.to.as_str())));
    if let Err(err) = validate_quorums(fresh.iter().map(|n| (n.key.as_str(), n.join)), &incoming) {
        return Ok(Err(err));
    }

    insert_graph(store, &flow, &fresh, &new_edges, &incoming, now, &mut added)?;
    // Edges from parents that already ended are evaluated now; the others
    // are evaluated when their parent's completion cascades.
    let mut report = CascadeReport::default();
    let targets: Vec<&str> = fresh
        .iter()
        .map(|n| n.key.as_str())
        .filter(|k| incoming.contains_key(k))
        .collect();
    for key in targets {
        decide_child(store, &flow, key, now, &mut report)?;
    }
    Ok(Ok(NodesAdded { nodes: added }))
}

/// Re-decides one blocked node from its parents' current outcomes: the
/// reconciler's safety net for a node whose promotion was missed. Nothing
/// is promoted in a cancelled flow.
pub fn reconcile_node<S: FlowStore + ?Sized>(
    store: &mut S,
    flow_id: FlowId,
    key: &str,
    now: Millis,
) -> Result<CascadeReport, EngineError> {
    let mut report = CascadeReport::default();
    let flow = load_flow(store, flow_id)?;
    if !flow.cancelled {
        decide_child(store, &flow, key, now, &mut report)?;
    }
    Ok(report)
}
