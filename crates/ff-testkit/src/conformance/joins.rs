//! Join rules and edge conditions: all_of, any_of, quorum, on_failure,
//! always, skips and cancelled losers.

use ff_core::flow::{EdgeCondition, FlowSpec, FlowState, Join};
use ff_core::{ErrorKind, ListFilter, State};

use super::flow_support::*;
use super::support::*;
use crate::BackendFactory;

pub async fn all_of_dead_edge_skips_child(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(
        vec![node("a"), node("b"), node("c")],
        vec![edge("a", "c"), edge("b", "c")],
    );
    let flow = create(&b, spec).await;
    fail_node(&b, "a", "x").await;
    pump(&b).await;
    assert_states(&b, &flow, &[("b", State::Ready), ("c", State::Skipped)]).await;
    assert_eq!(
        view(&b, &flow).await.state,
        FlowState::Running,
        "b still runs"
    );
    run_node(&b, "b", "null").await;
    pump(&b).await;
    assert_eq!(view(&b, &flow).await.state, FlowState::Failed);
}

pub async fn any_of_first_success_promotes(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(
        vec![node("a"), node("b"), joined("c", Join::AnyOf)],
        vec![edge("a", "c"), edge("b", "c")],
    );
    let flow = create(&b, spec).await;
    run_node(&b, "b", "null").await;
    pump(&b).await;
    assert_states(&b, &flow, &[("a", State::Ready), ("c", State::Ready)]).await;
    run_node(&b, "a", "null").await;
    pump(&b).await;
    assert_eq!(
        state_of(&b, &flow, "c").await,
        State::Ready,
        "promoted once, untouched after"
    );
}

pub async fn any_of_all_dead_skips(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(
        vec![node("a"), node("b"), joined("c", Join::AnyOf)],
        vec![edge("a", "c"), edge("b", "c")],
    );
    let flow = create(&b, spec).await;
    fail_node(&b, "a", "x").await;
    pump(&b).await;
    assert_eq!(
        state_of(&b, &flow, "c").await,
        State::Blocked,
        "b may still succeed"
    );
    fail_node(&b, "b", "y").await;
    pump(&b).await;
    assert_eq!(state_of(&b, &flow, "c").await, State::Skipped);
}

pub async fn any_of_cancels_losers(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(
        vec![
            node("a"),
            node("b"),
            joined("c", Join::AnyOf).cancel_losers(),
        ],
        vec![edge("a", "c"), edge("b", "c")],
    );
    let flow = create(&b, spec).await;
    let b_claim = claim_node(&b, "b").await;
    run_node(&b, "a", "null").await;
    pump(&b).await;
    assert_states(&b, &flow, &[("b", State::Cancelled), ("c", State::Ready)]).await;
    expect_err(
        b.engine
            .complete(&b_claim.handle, ff_core::JsonText::null())
            .await,
        ErrorKind::NotActive,
    );
}

pub async fn loser_kept_when_other_node_needs_it(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(
        vec![
            node("a"),
            node("b"),
            joined("c", Join::AnyOf).cancel_losers(),
            node("d"),
        ],
        vec![edge("a", "c"), edge("b", "c"), edge("b", "d")],
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
}

pub async fn quorum_two_of_three(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(
        vec![
            node("a"),
            node("b"),
            node("c"),
            joined("d", Join::Quorum(2)),
        ],
        vec![edge("a", "d"), edge("b", "d"), edge("c", "d")],
    );
    let flow = create(&b, spec).await;
    run_node(&b, "a", "null").await;
    pump(&b).await;
    assert_eq!(state_of(&b, &flow, "d").await, State::Blocked);
    run_node(&b, "c", "null").await;
    pump(&b).await;
    assert_states(&b, &flow, &[("b", State::Ready), ("d", State::Ready)]).await;
}

pub async fn quorum_skips_when_impossible_early(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(
        vec![
            node("a"),
            node("b"),
            node("c"),
            joined("d", Join::Quorum(2)),
        ],
        vec![edge("a", "d"), edge("b", "d"), edge("c", "d")],
    );
    let flow = create(&b, spec).await;
    fail_node(&b, "a", "x").await;
    pump(&b).await;
    assert_eq!(
        state_of(&b, &flow, "d").await,
        State::Blocked,
        "two may still succeed"
    );
    fail_node(&b, "b", "y").await;
    pump(&b).await;
    assert_states(&b, &flow, &[("c", State::Ready), ("d", State::Skipped)]).await;
}

pub async fn quorum_n_above_incoming_rejected(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    for n in [3, 0] {
        let spec = FlowSpec::new(
            vec![node("a"), node("b"), joined("c", Join::Quorum(n))],
            vec![edge("a", "c"), edge("b", "c")],
        );
        let err = expect_err(b.engine.create_flow(spec).await, ErrorKind::Invalid);
        assert!(err.to_string().contains("quorum"), "{err}");
    }
    let executions = b
        .engine
        .list_executions(&ListFilter::default())
        .await
        .expect("list");
    assert!(executions.items.is_empty());
}

pub async fn on_failure_edge_runs_on_failure(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(
        vec![node("a"), node("handler")],
        vec![edge_if("a", "handler", EdgeCondition::OnFailure)],
    );
    let flow = create(&b, spec).await;
    fail_node(&b, "a", "disk full").await;
    pump(&b).await;
    assert_eq!(state_of(&b, &flow, "handler").await, State::Ready);
}

pub async fn on_failure_edge_dead_on_success(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(
        vec![node("a"), node("handler")],
        vec![edge_if("a", "handler", EdgeCondition::OnFailure)],
    );
    let flow = create(&b, spec).await;
    run_node(&b, "a", "null").await;
    pump(&b).await;
    assert_eq!(state_of(&b, &flow, "handler").await, State::Skipped);
    assert_eq!(
        view(&b, &flow).await.state,
        FlowState::Completed,
        "a skip is not a failure"
    );
}

pub async fn always_edge_runs_after_cancel(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(
        vec![node("a"), node("cleanup"), node("next")],
        vec![
            edge_if("a", "cleanup", EdgeCondition::Always),
            edge("a", "next"),
        ],
    );
    let flow = create(&b, spec).await;
    b.engine.cancel(flow.nodes["a"]).await.expect("cancel");
    pump(&b).await;
    assert_states(
        &b,
        &flow,
        &[
            ("a", State::Cancelled),
            ("cleanup", State::Ready),
            ("next", State::Skipped),
        ],
    )
    .await;
}

pub async fn skip_cascades_three_levels(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let spec = FlowSpec::new(
        vec![node("a"), node("b"), node("c"), node("d")],
        vec![edge("a", "b"), edge("b", "c"), edge("c", "d")],
    );
    let flow = create(&b, spec).await;
    fail_node(&b, "a", "x").await;
    let cascaded = pump(&b).await;
    assert_eq!(cascaded, 4, "a's completion, then one per skip");
    assert_states(
        &b,
        &flow,
        &[
            ("b", State::Skipped),
            ("c", State::Skipped),
            ("d", State::Skipped),
        ],
    )
    .await;
    assert_eq!(view(&b, &flow).await.state, FlowState::Failed);
}
