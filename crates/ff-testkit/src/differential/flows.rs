//! The flow side of the differential test: random flow specs and dynamic
//! adds, and cascades of outbox entries driven the way the engine's
//! listener and reconciler drive them (read the undispatched entries,
//! cascade them), never through the best-effort completion stream.

use std::collections::HashSet;

use ff_core::flow::{EdgeCondition, EdgeSpec, FlowSpec, Join, NodeSpec};
use ff_core::{CompletionPayload, EngineError, JsonText, RetryPolicy, SubmitRequest};

use super::ops::{random_retry, Op, LANES};
use super::{Rng, Side};

/// Most batches one `CascadeAll` runs; each dispatches at least one entry
/// unless cascades fail, so this only bounds a failing case.
const MAX_ROUNDS: usize = 30;

fn random_condition(rng: &mut Rng) -> EdgeCondition {
    match rng.below(100) {
        0..=69 => EdgeCondition::OnSuccess,
        70..=84 => EdgeCondition::OnFailure,
        _ => EdgeCondition::Always,
    }
}

/// A join for a node with `incoming` edges; now and then an impossible
/// quorum, which create_flow must refuse alike everywhere.
fn random_join(rng: &mut Rng, incoming: u32) -> Join {
    if incoming == 0 {
        return Join::AllOf;
    }
    match rng.below(100) {
        0..=54 => Join::AllOf,
        55..=79 => Join::AnyOf,
        80..=96 => Join::Quorum(1 + rng.below(u64::from(incoming)) as u32),
        _ => Join::Quorum(incoming + 1),
    }
}

/// A DAG of one to five nodes `n0..`, edges only from lower to higher
/// keys, on the test's lanes so random claims run flow nodes too.
pub(super) fn random_flow(rng: &mut Rng) -> FlowSpec {
    let n = 1 + rng.below(5) as usize;
    let keys: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
    let mut edges = Vec::new();
    let mut incoming = vec![0u32; n];
    for to in 1..n {
        for from in 0..to {
            if rng.chance(55) {
                edges.push(EdgeSpec::new(&keys[from], &keys[to]).condition(random_condition(rng)));
                incoming[to] += 1;
            }
        }
    }
    let nodes = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let exec = SubmitRequest::new(
                *rng.pick(&LANES),
                "step",
                JsonText::unchecked(format!("{{\"node\":{i}}}")),
            )
            .lease_ms(500 + rng.below(3) * 500)
            .retry(random_retry(rng));
            let node = NodeSpec::new(key, exec).join(random_join(rng, incoming[i]));
            if node.join != Join::AllOf && rng.chance(40) {
                node.cancel_losers()
            } else {
                node
            }
        })
        .collect();
    let mut spec = FlowSpec::new(nodes, edges);
    if rng.chance(25) {
        spec = spec.fail_fast();
    }
    if rng.chance(20) {
        spec = spec.idempotency_key(format!("f{}", rng.below(3)));
    }
    spec
}

/// Node `x{m}` of a dynamic add: its spec follows from `m`, so adding it
/// again is a replay; `changed` makes it a conflicting one.
fn added_node(m: u64, changed: bool) -> NodeSpec {
    let payload = if changed {
        format!("{{\"x\":{m},\"v\":2}}")
    } else {
        format!("{{\"x\":{m}}}")
    };
    let exec = SubmitRequest::new(
        LANES[m as usize % LANES.len()],
        "step",
        JsonText::unchecked(payload),
    )
    .retry(RetryPolicy {
        max_attempts: 1 + (m as u32 % 2),
        initial_backoff_ms: 100,
        max_backoff_ms: 1_000,
        jitter_percent: 0,
    });
    let join = if m == 3 { Join::AnyOf } else { Join::AllOf };
    NodeSpec::new(format!("x{m}"), exec).join(join)
}

/// A dynamic add by a flow member's lease (now and then any lease, which
/// must be refused alike): one or two nodes fed by the adding node, and
/// sometimes by another node of the flow.
pub(super) fn random_add(rng: &mut Rng, side: &Side) -> Op {
    let lease = rng.pick(&side.members).clone();
    let handle = if rng.chance(10) {
        rng.below(side.handles.len() as u64) as usize
    } else {
        lease.handle
    };
    let existing = &side.flow_keys[lease.flow];
    let (mut nodes, mut edges) = (Vec::new(), Vec::new());
    for _ in 0..1 + rng.below(2) {
        let m = rng.below(4);
        let node = added_node(m, rng.chance(10));
        if nodes.iter().any(|n: &NodeSpec| n.key == node.key) {
            continue;
        }
        edges.push(EdgeSpec::new(&lease.node_key, &node.key));
        if !existing.is_empty() && rng.chance(35) {
            let from = rng.pick(existing);
            if *from != node.key && *from != lease.node_key {
                edges.push(EdgeSpec::new(from, &node.key).condition(random_condition(rng)));
            }
        }
        nodes.push(node);
    }
    Op::AddNodes {
        handle,
        nodes,
        edges,
    }
}

pub(super) async fn create(side: &mut Side, spec: &FlowSpec) -> String {
    let result = side.engine.create_flow(spec.clone()).await;
    if let Ok(created) = &result {
        let flow = side.learn_flow(created.flow_id);
        for (key, id) in &created.nodes {
            side.learn_node(flow, key, *id);
        }
    }
    side.normalize(result)
}

pub(super) async fn add_nodes(
    side: &mut Side,
    handle: usize,
    nodes: &[NodeSpec],
    edges: &[EdgeSpec],
) -> String {
    let lease = side.handles[handle].clone();
    let result = side
        .engine
        .add_nodes(&lease, nodes.to_vec(), edges.to_vec())
        .await;
    if let Ok(added) = &result {
        let flow = side
            .members
            .iter()
            .find(|m| m.handle == handle)
            .map(|m| m.flow);
        for (key, id) in &added.nodes {
            match flow {
                Some(flow) => side.learn_node(flow, key, *id),
                None => {
                    side.learn(*id);
                }
            }
        }
    }
    side.normalize(result)
}

/// The undispatched entries in a backend-independent order (by execution,
/// then attempt): outbox positions differ between backends.
async fn pending(side: &Side) -> Result<Vec<CompletionPayload>, EngineError> {
    let mut pending = side.engine.undispatched_completions(0, 1_000).await?;
    pending.sort_by_key(|p| {
        let index = side.index.get(&p.execution_id).copied();
        (index.unwrap_or(usize::MAX), p.attempt, p.committed_at)
    });
    Ok(pending)
}

/// An entry as compared: everything but its outbox position.
fn describe(side: &Side, payload: &CompletionPayload) -> String {
    side.replace_ids(&format!(
        "{:?} {:?}/{:?} {:?} attempt={} at={}",
        payload.execution_id,
        payload.flow_id,
        payload.node_key,
        payload.outcome,
        payload.attempt,
        payload.committed_at,
    ))
}

fn describe_all(side: &Side, pending: &[CompletionPayload]) -> String {
    let all: Vec<String> = pending.iter().map(|p| describe(side, p)).collect();
    format!("pending [{}]", all.join(", "))
}

/// Cascades the undispatched entry at `at` (modulo their count).
pub(super) async fn cascade_one(side: &Side, at: usize) -> String {
    let pending = match pending(side).await {
        Ok(pending) => pending,
        Err(err) => return side.normalize::<()>(Err(err)),
    };
    let Some(payload) = pending.get(at % pending.len().max(1)) else {
        return "nothing pending".to_owned();
    };
    let report = side.engine.cascade_completion(payload).await;
    format!(
        "{} -> {}: {}",
        describe_all(side, &pending),
        describe(side, payload),
        side.normalize(report)
    )
}

/// Cascades every undispatched entry, one batch at a time as the listener
/// does. A batch holds every solo entry and at most one entry per flow, so
/// its answers do not hang on the order a backend runs the batch in (two
/// cascades into one flow may race); `repeat` adds the batch's first entry
/// again at its end, which must find it dispatched.
pub(super) async fn cascade_all(side: &Side, repeat: bool) -> String {
    let mut out = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let pending = match pending(side).await {
            Ok(pending) => pending,
            Err(err) => {
                out.push(side.normalize::<()>(Err(err)));
                break;
            }
        };
        if pending.is_empty() {
            break;
        }
        let mut flows = HashSet::new();
        let mut batch: Vec<CompletionPayload> = pending
            .iter()
            .filter(|p| p.flow_id.is_none_or(|flow| flows.insert(flow)))
            .cloned()
            .collect();
        if repeat {
            batch.push(batch[0].clone());
        }
        let cascaded = side.engine.cascade_completions(&batch).await;
        let answers = match cascaded {
            Ok(answers) => answers
                .into_iter()
                .map(|answer| side.normalize(answer))
                .collect::<Vec<_>>()
                .join("; "),
            Err(err) => side.normalize::<()>(Err(err)),
        };
        out.push(format!("{} -> {answers}", describe_all(side, &batch)));
    }
    out.join("\n    ")
}
