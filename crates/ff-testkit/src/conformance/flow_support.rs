//! Helpers for the flow scenarios: building specs, driving nodes, and
//! pumping the outbox the way the engine's listener would.

use ff_core::flow::{EdgeCondition, EdgeSpec, FlowCreated, FlowSpec, FlowView, Join, NodeSpec};
use ff_core::{ClaimRequest, Claimed, JsonText, RetryPolicy, State, SubmitRequest};

use crate::TestBackend;

/// A node running kind `step` on a lane named after its key (so a scenario
/// claims exactly the node it means), never retried (failures are final).
pub fn node(key: &str) -> NodeSpec {
    NodeSpec::new(
        key,
        SubmitRequest::new(
            key,
            "step",
            JsonText::unchecked(format!("{{\"node\":\"{key}\"}}")),
        )
        .retry(RetryPolicy::none()),
    )
}

pub fn joined(key: &str, join: Join) -> NodeSpec {
    node(key).join(join)
}

pub fn edge(from: &str, to: &str) -> EdgeSpec {
    EdgeSpec::new(from, to)
}

pub fn edge_if(from: &str, to: &str, condition: EdgeCondition) -> EdgeSpec {
    EdgeSpec::new(from, to).condition(condition)
}

pub async fn create(b: &TestBackend, spec: FlowSpec) -> FlowCreated {
    b.engine.create_flow(spec).await.expect("create flow")
}

pub async fn view(b: &TestBackend, created: &FlowCreated) -> FlowView {
    b.engine.get_flow(created.flow_id).await.expect("get flow")
}

/// The state of node `key`.
pub async fn state_of(b: &TestBackend, created: &FlowCreated, key: &str) -> State {
    b.engine
        .get_execution(created.nodes[key])
        .await
        .expect("get node")
        .state
}

/// Asserts the states of several nodes at once.
pub async fn assert_states(b: &TestBackend, created: &FlowCreated, expected: &[(&str, State)]) {
    let mut actual = Vec::new();
    for (key, _) in expected {
        actual.push((*key, state_of(b, created, key).await));
    }
    assert_eq!(actual, expected.to_vec());
}

/// Claims node `key` (it must be claimable).
pub async fn claim_node(b: &TestBackend, key: &str) -> Claimed {
    let mut claimed = b
        .engine
        .claim(&ClaimRequest::new([key], "w"))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "node {key} is not claimable");
    claimed.remove(0)
}

/// Claims and completes node `key` with `result`.
pub async fn run_node(b: &TestBackend, key: &str, result: &str) {
    let claimed = claim_node(b, key).await;
    b.engine
        .complete(&claimed.handle, JsonText::unchecked(result))
        .await
        .expect("complete");
}

/// Claims and permanently fails node `key`.
pub async fn fail_node(b: &TestBackend, key: &str, error: &str) {
    let claimed = claim_node(b, key).await;
    b.engine
        .fail(&claimed.handle, ff_core::Failure::permanent(error))
        .await
        .expect("fail");
}

/// Cascades every undispatched outbox entry until none is left, as the
/// engine's listener and reconciler would. Returns how many it cascaded.
pub async fn pump(b: &TestBackend) -> usize {
    let mut total = 0;
    for _ in 0..1_000 {
        let pending = b
            .engine
            .undispatched_completions(0, 1_000)
            .await
            .expect("outbox");
        if pending.is_empty() {
            return total;
        }
        for payload in &pending {
            b.engine.cascade_completion(payload).await.expect("cascade");
            total += 1;
        }
    }
    panic!("the outbox never drained");
}
