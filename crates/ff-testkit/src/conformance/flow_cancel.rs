//! Fail-fast, cancel_flow and dynamic fan-out.

use ff_core::flow::{EdgeCondition, FlowSpec, FlowState};
use ff_core::{ErrorKind, JsonText, Outcome, State};

use super::flow_support::*;
use super::support::*;
use crate::BackendFactory;

pub async fn fail_fast_cancels_rest_spares_compensation(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(
        vec![
            node("a"),
            node("b"),
            node("other"),
            node("comp"),
            node("comp2"),
        ],
        vec![
            edge("a", "b"),
            edge_if("a", "comp", EdgeCondition::OnFailure),
            edge("comp", "comp2"),
        ],
    )
    .fail_fast();
    let flow = create(&b, spec).await;
    let other = claim_node(&b, "other").await;
    fail_node(&b, "a", "charge declined").await;
    pump(&b).await;
    assert_states(
        &b,
        &flow,
        &[
            ("b", State::Cancelled),
            ("other", State::Cancelled),
            ("comp", State::Ready),
            ("comp2", State::Blocked),
        ],
    )
    .await;
    expect_err(
        b.engine.complete(&other.handle, JsonText::null()).await,
        ErrorKind::NotActive,
    );
    run_node(&b, "comp", "null").await;
    pump(&b).await;
    assert_eq!(
        state_of(&b, &flow, "comp2").await,
        State::Ready,
        "the compensation path runs"
    );
    run_node(&b, "comp2", "null").await;
    pump(&b).await;
    assert_eq!(view(&b, &flow).await.state, FlowState::Failed);
}

pub async fn cancel_flow_cancels_running_member(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(vec![node("a"), node("b")], vec![edge("a", "b")]);
    let flow = create(&b, spec).await;
    let running = claim_node(&b, "a").await;
    let resp = b
        .engine
        .cancel_flow(flow.flow_id)
        .await
        .expect("cancel flow");
    assert_eq!((resp.state, resp.changed), (FlowState::Cancelled, true));
    assert_states(
        &b,
        &flow,
        &[("a", State::Cancelled), ("b", State::Cancelled)],
    )
    .await;
    let err = expect_err(b.engine.renew(&running.handle).await, ErrorKind::NotActive);
    assert!(matches!(
        err,
        ff_core::EngineError::NotActive {
            outcome: Outcome::Cancelled
        }
    ));
    assert_eq!(view(&b, &flow).await.state, FlowState::Cancelled);
}

pub async fn cancel_flow_never_promotes_after(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(
        vec![node("a"), node("b"), node("c")],
        vec![edge("a", "b"), edge_if("a", "c", EdgeCondition::Always)],
    );
    let flow = create(&b, spec).await;
    let running = claim_node(&b, "a").await;
    b.engine
        .cancel_flow(flow.flow_id)
        .await
        .expect("cancel flow");
    expect_err(
        b.engine.complete(&running.handle, JsonText::null()).await,
        ErrorKind::NotActive,
    );
    pump(&b).await;
    assert_states(
        &b,
        &flow,
        &[
            ("a", State::Cancelled),
            ("b", State::Cancelled),
            ("c", State::Cancelled),
        ],
    )
    .await;
    claim_none(&b, "c").await;
}

pub async fn cancel_flow_on_terminal_is_noop(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let flow = create(&b, FlowSpec::new(vec![node("a")], vec![])).await;
    run_node(&b, "a", "null").await;
    pump(&b).await;
    let resp = b
        .engine
        .cancel_flow(flow.flow_id)
        .await
        .expect("cancel flow");
    assert_eq!((resp.state, resp.changed), (FlowState::Completed, false));
    assert_eq!(state_of(&b, &flow, "a").await, State::Completed);
    let again = b
        .engine
        .cancel_flow(flow.flow_id)
        .await
        .expect("cancel flow");
    assert_eq!(again.state, FlowState::Completed);
    expect_err(
        b.engine.cancel_flow(ff_core::FlowId::new()).await,
        ErrorKind::NotFound,
    );
}

pub async fn dynamic_fan_out_adds_children(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(vec![node("root"), node("done")], vec![edge("root", "done")]);
    let mut flow = create(&b, spec).await;
    run_node(&b, "root", "null").await;
    pump(&b).await;
    let splitter = claim_node(&b, "done").await;
    let children = vec![node("c1"), node("c2"), node("c3")];
    let edges = vec![
        edge("done", "c1"),
        edge("done", "c2"),
        edge("done", "c3"),
        edge("root", "c3"),
    ];
    let added = b
        .engine
        .add_nodes(&splitter.handle, children, edges)
        .await
        .expect("add nodes");
    assert_eq!(added.nodes.len(), 3);
    flow.nodes.extend(added.nodes);
    assert_states(
        &b,
        &flow,
        &[
            ("c1", State::Blocked),
            ("c2", State::Blocked),
            ("c3", State::Blocked),
        ],
    )
    .await;
    b.engine
        .complete(&splitter.handle, JsonText::null())
        .await
        .expect("complete");
    pump(&b).await;
    assert_states(
        &b,
        &flow,
        &[
            ("c1", State::Ready),
            ("c2", State::Ready),
            ("c3", State::Ready),
        ],
    )
    .await;
    assert_eq!(view(&b, &flow).await.nodes.len(), 5);

    // A new node whose only parent already ended is decided at once.
    let flow2 = create(&b, FlowSpec::new(vec![node("p"), node("q")], vec![])).await;
    run_node(&b, "p", "null").await;
    let q = claim_node(&b, "q").await;
    b.engine
        .add_nodes(&q.handle, vec![node("late")], vec![edge("p", "late")])
        .await
        .expect("add nodes");
    assert_eq!(state_of(&b, &flow2, "p").await, State::Completed);
    let late = b.engine.get_flow(flow2.flow_id).await.expect("flow");
    let late_state = late.nodes.iter().find(|n| n.key == "late").map(|n| n.state);
    assert_eq!(late_state, Some(State::Ready));
}

pub async fn dynamic_fan_out_replay_is_idempotent(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let flow = create(&b, FlowSpec::new(vec![node("root")], vec![])).await;
    let root = claim_node(&b, "root").await;
    let add = || {
        (
            vec![node("x"), node("y")],
            vec![edge("root", "x"), edge("x", "y")],
        )
    };
    let (nodes, edges) = add();
    let first = b
        .engine
        .add_nodes(&root.handle, nodes, edges)
        .await
        .expect("add");
    let (nodes, edges) = add();
    let again = b
        .engine
        .add_nodes(&root.handle, nodes, edges)
        .await
        .expect("replay");
    assert_eq!(again, first, "the same ids");
    assert_eq!(view(&b, &flow).await.nodes.len(), 3);
    assert_eq!(view(&b, &flow).await.edges.len(), 2);

    let changed = vec![node("x").cancel_losers()];
    expect_err(
        b.engine.add_nodes(&root.handle, changed, vec![]).await,
        ErrorKind::Conflict,
    );
    let cyclic = vec![edge("y", "root")];
    expect_err(
        b.engine.add_nodes(&root.handle, vec![], cyclic).await,
        ErrorKind::Conflict,
    );
    assert_eq!(view(&b, &flow).await.nodes.len(), 3);
}

pub async fn dynamic_fan_out_on_cancelled_flow_not_active(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let flow = create(&b, FlowSpec::new(vec![node("root")], vec![])).await;
    let root = claim_node(&b, "root").await;
    b.engine
        .cancel_flow(flow.flow_id)
        .await
        .expect("cancel flow");
    let err = expect_err(
        b.engine
            .add_nodes(&root.handle, vec![node("x")], vec![edge("root", "x")])
            .await,
        ErrorKind::NotActive,
    );
    assert!(matches!(
        err,
        ff_core::EngineError::NotActive {
            outcome: Outcome::Cancelled
        }
    ));
    assert_eq!(view(&b, &flow).await.nodes.len(), 1);
}
