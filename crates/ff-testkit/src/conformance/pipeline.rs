//! The completion pipeline: duplicates, concurrent and batched cascades,
//! solo entries.

use std::sync::Arc;

use ff_core::flow::FlowSpec;
use ff_core::{ClaimRequest, ErrorKind, FlowId, JsonText, Outcome, State};

use super::flow_support::*;
use super::support::*;
use crate::BackendFactory;

pub async fn duplicate_completion_is_noop(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let flow = create(
        &b,
        FlowSpec::new(vec![node("a"), node("b")], vec![edge("a", "b")]),
    )
    .await;
    run_node(&b, "a", "null").await;
    let pending = b
        .engine
        .undispatched_completions(0, 10)
        .await
        .expect("outbox");
    assert_eq!(pending.len(), 1);
    let first = b
        .engine
        .cascade_completion(&pending[0])
        .await
        .expect("cascade");
    assert!(first.dispatched);
    assert_eq!(first.promoted, vec![flow.nodes["b"]]);
    let before = get(&b, flow.nodes["b"]).await;
    let second = b
        .engine
        .cascade_completion(&pending[0])
        .await
        .expect("cascade");
    assert!(!second.dispatched && second.promoted.is_empty());
    assert_eq!(get(&b, flow.nodes["b"]).await, before);
    assert!(b
        .engine
        .undispatched_completions(0, 10)
        .await
        .expect("outbox")
        .is_empty());
}

pub async fn concurrent_cascades_into_one_fan_in(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let mut nodes = vec![node("sink")];
    let mut edges = Vec::new();
    for i in 0..10 {
        let key = format!("p{i}");
        nodes.push(ff_core::flow::NodeSpec::new(
            &key,
            ff_core::SubmitRequest::new("parents", "step", JsonText::null()),
        ));
        edges.push(edge(&key, "sink"));
    }
    let flow = create(&b, FlowSpec::new(nodes, edges)).await;
    let claimed = b
        .engine
        .claim(&ClaimRequest::new(["parents"], "w").max(10))
        .await
        .expect("claim");
    for c in &claimed {
        b.engine
            .complete(&c.handle, JsonText::null())
            .await
            .expect("complete");
    }
    let pending = b
        .engine
        .undispatched_completions(0, 100)
        .await
        .expect("outbox");
    assert_eq!(pending.len(), 10);
    let mut tasks = Vec::new();
    for payload in pending.iter().chain(pending.iter()) {
        let engine = Arc::clone(&b.engine);
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            engine.cascade_completion(&payload).await
        }));
    }
    let mut promoted = Vec::new();
    let mut dispatched = 0;
    for task in tasks {
        let report = task.await.expect("join").expect("cascade");
        dispatched += usize::from(report.dispatched);
        promoted.extend(report.promoted);
    }
    assert_eq!(dispatched, 10, "each entry is dispatched once");
    assert_eq!(
        promoted,
        vec![flow.nodes["sink"]],
        "the fan-in is promoted exactly once"
    );
    let sink = get(&b, flow.nodes["sink"]).await;
    assert_eq!((sink.state, sink.attempt), (State::Ready, 0));
    assert_eq!(sink.inputs.map(|i| i.len()), Some(10));
}

pub async fn batched_cascades_apply_each_alone(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let flow = create(
        &b,
        FlowSpec::new(
            vec![node("a"), node("b"), node("c"), node("d")],
            vec![edge("a", "b"), edge("c", "d")],
        ),
    )
    .await;
    run_node(&b, "a", "null").await;
    run_node(&b, "c", "null").await;
    submit(&b, job("solo")).await;
    let claimed = complete_one(&b, "solo").await;
    let pending = b
        .engine
        .undispatched_completions(0, 10)
        .await
        .expect("outbox");
    let entry = |id| {
        pending
            .iter()
            .find(|p| p.execution_id == id)
            .expect("an outbox entry")
            .clone()
    };
    let (a, c, solo) = (
        entry(flow.nodes["a"]),
        entry(flow.nodes["c"]),
        entry(claimed),
    );
    // The solo entry, claimed by a cascade that then fails (its flow does
    // not exist): that cascade alone rolls back, its entry included.
    let poisoned = ff_core::CompletionPayload {
        flow_id: Some(FlowId::new()),
        node_key: Some("ghost".into()),
        ..solo.clone()
    };
    let results = b
        .engine
        .cascade_completions(&[a.clone(), poisoned, c, a])
        .await
        .expect("cascades");
    assert_eq!(results.len(), 4, "one answer per payload");
    let first = results[0].as_ref().expect("a cascades");
    assert!(first.dispatched);
    assert_eq!(first.promoted, vec![flow.nodes["b"]]);
    assert_eq!(
        results[1]
            .as_ref()
            .map_err(|e| e.kind())
            .expect_err("the poisoned cascade fails"),
        ErrorKind::NotFound
    );
    assert_eq!(
        results[2].as_ref().expect("c cascades").promoted,
        vec![flow.nodes["d"]]
    );
    let duplicate = results[3].as_ref().expect("a again");
    assert!(!duplicate.dispatched && duplicate.promoted.is_empty());
    assert_states(&b, &flow, &[("b", State::Ready), ("d", State::Ready)]).await;
    assert_eq!(
        b.engine
            .undispatched_completions(0, 10)
            .await
            .expect("outbox"),
        vec![solo.clone()],
        "the failed cascade left its entry undispatched"
    );
    let solo = b
        .engine
        .cascade_completions(&[solo])
        .await
        .expect("cascade");
    assert!(solo[0].as_ref().expect("solo cascades").dispatched);
    assert!(b
        .engine
        .cascade_completions(&[])
        .await
        .expect("nothing")
        .is_empty());
}

pub async fn completions_for_solo_executions(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("solo")).await;
    complete_one(&b, "solo").await;
    let pending = b
        .engine
        .undispatched_completions(0, 10)
        .await
        .expect("outbox");
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].execution_id, pending[0].outcome),
        (id, Outcome::Completed)
    );
    assert_eq!(pending[0].flow_id, None);
    let report = b
        .engine
        .cascade_completion(&pending[0])
        .await
        .expect("cascade");
    assert!(report.dispatched && report.promoted.is_empty());
    assert!(b
        .engine
        .undispatched_completions(0, 10)
        .await
        .expect("outbox")
        .is_empty());
}

pub async fn reconciler_promotes_stuck_blocked_node(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let flow = create(
        &b,
        FlowSpec::new(vec![node("a"), node("b")], vec![edge("a", "b")]),
    )
    .await;
    run_node(&b, "a", "null").await;
    // The completion was never cascaded (a lost wake-up and a lost entry);
    // the blocked-node scan still decides b from its parents, once a's end
    // is older than the grace.
    b.clock.advance(ms(1_000));
    assert_eq!(
        b.engine.reconcile_blocked(5_000, 100).await.expect("scan"),
        0,
        "inside the grace"
    );
    assert_eq!(state_of(&b, &flow, "b").await, State::Blocked);
    assert_eq!(b.engine.reconcile_blocked(500, 100).await.expect("scan"), 1);
    assert_eq!(state_of(&b, &flow, "b").await, State::Ready);
    assert_eq!(b.engine.reconcile_blocked(0, 100).await.expect("scan"), 0);
    // The entry itself is still dispatched once, as a no-op for b.
    assert_eq!(pump(&b).await, 1);
    assert_eq!(state_of(&b, &flow, "b").await, State::Ready);
}

pub async fn outbox_trim_deletes_only_dispatched(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    for lane in ["t1", "t2"] {
        submit(&b, job(lane)).await;
        let claimed = claim_one(&b, lane).await;
        b.engine
            .complete(&claimed.handle, JsonText::null())
            .await
            .expect("complete");
    }
    let pending = b
        .engine
        .undispatched_completions(0, 10)
        .await
        .expect("outbox");
    b.engine
        .cascade_completion(&pending[0])
        .await
        .expect("cascade");
    b.clock.advance(ms(1_000));
    assert_eq!(
        b.engine.trim_outbox(5_000, 100).await.expect("trim"),
        0,
        "inside the grace period"
    );
    assert_eq!(b.engine.trim_outbox(500, 100).await.expect("trim"), 1);
    let left = b
        .engine
        .undispatched_completions(0, 10)
        .await
        .expect("outbox");
    assert_eq!(
        left,
        vec![pending[1].clone()],
        "the undispatched entry stays"
    );
    assert!(
        !b.engine
            .cascade_completion(&pending[0])
            .await
            .expect("cascade")
            .dispatched
    );
}
