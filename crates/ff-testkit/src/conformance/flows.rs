//! Flow shapes, creation, reads, inputs and derived outcomes.

use ff_core::flow::{EdgeCondition, FlowSpec, FlowState, Join, NodeSpec};
use ff_core::{ClaimRequest, ErrorKind, JsonText, ListFilter, Outcome, State, SubmitRequest};

use super::flow_support::*;
use super::support::*;
use crate::BackendFactory;

pub async fn flow_linear_chain(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(
        vec![node("a"), node("b"), node("c")],
        vec![edge("a", "b"), edge("b", "c")],
    );
    let flow = create(&b, spec).await;
    assert!(flow.created);
    assert_states(
        &b,
        &flow,
        &[
            ("a", State::Ready),
            ("b", State::Blocked),
            ("c", State::Blocked),
        ],
    )
    .await;
    claim_none(&b, "b").await;

    run_node(&b, "a", "1").await;
    pump(&b).await;
    assert_states(
        &b,
        &flow,
        &[
            ("a", State::Completed),
            ("b", State::Ready),
            ("c", State::Blocked),
        ],
    )
    .await;
    run_node(&b, "b", "2").await;
    pump(&b).await;
    assert_eq!(view(&b, &flow).await.state, FlowState::Running);
    run_node(&b, "c", "3").await;
    pump(&b).await;

    let view = view(&b, &flow).await;
    assert_eq!(view.state, FlowState::Completed);
    assert_eq!(view.nodes.len(), 3);
    assert!(view.nodes.iter().all(|n| n.state == State::Completed));
    assert_eq!(view.edges.len(), 2);
    let exec = get(&b, flow.nodes["c"]).await;
    let membership = exec.flow.expect("a member");
    assert_eq!(
        (membership.flow_id, membership.node_key.as_str()),
        (flow.flow_id, "c")
    );
}

pub async fn flow_diamond(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(
        vec![node("a"), node("b"), node("c"), node("d")],
        vec![
            edge("a", "b"),
            edge("a", "c"),
            edge("b", "d"),
            edge("c", "d"),
        ],
    );
    let flow = create(&b, spec).await;
    run_node(&b, "a", "null").await;
    pump(&b).await;
    assert_states(
        &b,
        &flow,
        &[
            ("b", State::Ready),
            ("c", State::Ready),
            ("d", State::Blocked),
        ],
    )
    .await;
    run_node(&b, "b", "null").await;
    pump(&b).await;
    assert_eq!(
        state_of(&b, &flow, "d").await,
        State::Blocked,
        "d waits for c too"
    );
    run_node(&b, "c", "null").await;
    pump(&b).await;
    assert_eq!(state_of(&b, &flow, "d").await, State::Ready);
    run_node(&b, "d", "null").await;
    pump(&b).await;
    assert_eq!(view(&b, &flow).await.state, FlowState::Completed);
}

fn fan_node(key: &str) -> NodeSpec {
    NodeSpec::new(key, SubmitRequest::new("fan", "step", JsonText::null()))
}

pub async fn flow_fan_out_fan_in_100(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let mut nodes = vec![node("root"), node("sink")];
    let mut edges = Vec::new();
    for i in 0..100 {
        let key = format!("m{i:03}");
        nodes.push(fan_node(&key));
        edges.push(edge("root", &key));
        edges.push(edge(&key, "sink"));
    }
    let flow = create(&b, FlowSpec::new(nodes, edges)).await;
    run_node(&b, "root", "null").await;
    pump(&b).await;
    let claimed = b
        .engine
        .claim(&ClaimRequest::new(["fan"], "w").max(1000))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 100, "the whole fan-out is ready");
    for (i, c) in claimed.iter().enumerate() {
        b.engine
            .complete(&c.handle, JsonText::unchecked(i.to_string()))
            .await
            .expect("complete");
        if i == 98 {
            pump(&b).await;
            assert_eq!(state_of(&b, &flow, "sink").await, State::Blocked);
        }
    }
    pump(&b).await;
    let sink = claim_node(&b, "sink").await;
    b.engine
        .complete(&sink.handle, JsonText::null())
        .await
        .expect("complete");
    pump(&b).await;
    let view = view(&b, &flow).await;
    assert_eq!((view.state, view.nodes.len()), (FlowState::Completed, 102));
}

pub async fn flow_cycle_rejected_nothing_stored(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(
        vec![node("a"), node("b"), node("c"), node("d")],
        vec![
            edge("d", "a"),
            edge("a", "b"),
            edge("b", "c"),
            edge("c", "a"),
        ],
    );
    let err = expect_err(b.engine.create_flow(spec).await, ErrorKind::Invalid);
    let text = err.to_string();
    assert!(
        text.contains("cycle: a -> b -> c -> a"),
        "the cycle is named: {text}"
    );
    let self_loop = FlowSpec::new(vec![node("a")], vec![edge("a", "a")]);
    expect_err(b.engine.create_flow(self_loop).await, ErrorKind::Invalid);
    let unknown = FlowSpec::new(vec![node("a")], vec![edge("a", "zzz")]);
    expect_invalid(b.engine.create_flow(unknown).await, "edges[0]");
    let dup = FlowSpec::new(vec![node("a"), node("a")], vec![]);
    expect_invalid(b.engine.create_flow(dup).await, "nodes[1].key");
    expect_invalid(
        b.engine.create_flow(FlowSpec::new(vec![], vec![])).await,
        "nodes",
    );

    let executions = b
        .engine
        .list_executions(&ListFilter::default())
        .await
        .expect("list");
    assert!(executions.items.is_empty());
    let flows = b
        .engine
        .list_flows(&Default::default())
        .await
        .expect("list flows");
    assert!(flows.items.is_empty());
}

pub async fn flow_create_idempotent(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(vec![node("a"), node("b")], vec![edge("a", "b")])
        .idempotency_key("nightly-42");
    let first = create(&b, spec.clone()).await;
    let second = create(&b, spec).await;
    assert!(first.created && !second.created);
    assert_eq!(second.flow_id, first.flow_id);
    assert_eq!(second.nodes, first.nodes);
    let other = FlowSpec::new(vec![node("x")], vec![]).idempotency_key("nightly-42");
    assert_eq!(
        create(&b, other).await.flow_id,
        first.flow_id,
        "whatever the spec"
    );
    let executions = b
        .engine
        .list_executions(&ListFilter::default())
        .await
        .expect("list");
    assert_eq!(executions.items.len(), 2);
}

pub async fn inputs_carry_parent_outcomes(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(
        vec![node("a"), node("b"), node("c")],
        vec![edge("a", "c"), edge_if("b", "c", EdgeCondition::OnFailure)],
    );
    let flow = create(&b, spec).await;
    run_node(&b, "a", r#"{"rows": 12}"#).await;
    fail_node(&b, "b", "upstream 503").await;
    pump(&b).await;
    let claimed = claim_node(&b, "c").await;
    let inputs = claimed.inputs.expect("a flow node gets inputs");
    assert_eq!(inputs.len(), 2);
    assert_eq!(inputs["a"].outcome, Outcome::Completed);
    assert_eq!(
        inputs["a"].result.as_ref().map(JsonText::as_str),
        Some(r#"{"rows": 12}"#)
    );
    assert_eq!(inputs["b"].outcome, Outcome::Failed);
    assert_eq!(inputs["b"].error.as_deref(), Some("upstream 503"));
    assert_eq!(get(&b, flow.nodes["c"]).await.inputs, Some(inputs));
}

pub async fn flow_outcome_completed_failed_cancelled(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let ok = create(&b, FlowSpec::new(vec![node("ok1")], vec![])).await;
    let bad = create(&b, FlowSpec::new(vec![node("bad1"), node("bad2")], vec![])).await;
    let stop = create(&b, FlowSpec::new(vec![node("stop1")], vec![])).await;
    run_node(&b, "ok1", "null").await;
    fail_node(&b, "bad1", "x").await;
    assert_eq!(
        view(&b, &bad).await.state,
        FlowState::Running,
        "bad2 still runs"
    );
    run_node(&b, "bad2", "null").await;
    b.engine.cancel_flow(stop.flow_id).await.expect("cancel");
    pump(&b).await;
    assert_eq!(view(&b, &ok).await.state, FlowState::Completed);
    assert_eq!(view(&b, &bad).await.state, FlowState::Failed);
    assert_eq!(view(&b, &stop).await.state, FlowState::Cancelled);

    let failed = ff_core::flow::FlowFilter {
        state: Some(FlowState::Failed),
        ..Default::default()
    };
    let page = b.engine.list_flows(&failed).await.expect("list flows");
    assert_eq!(
        page.items.iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![bad.flow_id]
    );
    let all = b
        .engine
        .list_flows(&Default::default())
        .await
        .expect("list flows");
    assert_eq!(all.items.len(), 3);
}

pub async fn requeue_flow_member_conflict(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let flow = create(&b, FlowSpec::new(vec![node("a")], vec![])).await;
    fail_node(&b, "a", "x").await;
    let err = expect_err(b.engine.requeue(flow.nodes["a"]).await, ErrorKind::Conflict);
    assert!(err.to_string().contains("flow"));
    assert_eq!(state_of(&b, &flow, "a").await, State::Failed);
}

pub async fn flow_with_1000_nodes(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let mut nodes = vec![node("root")];
    let mut edges = Vec::new();
    for i in 1..1000 {
        let key = format!("n{i:04}");
        nodes.push(fan_node(&key).join(Join::AllOf));
        edges.push(edge("root", &key));
    }
    let flow = create(&b, FlowSpec::new(nodes, edges)).await;
    assert_eq!(flow.nodes.len(), 1000);
    assert_eq!(view(&b, &flow).await.nodes.len(), 1000);
    run_node(&b, "root", "null").await;
    pump(&b).await;
    let counts = b
        .engine
        .count_by_lane_and_state("default")
        .await
        .expect("counts");
    let ready = counts
        .iter()
        .find(|c| c.lane == "fan" && c.state == State::Ready)
        .map(|c| c.count);
    assert_eq!(ready, Some(999));
}
