//! The reconciler is the guarantee: with every completion event dropped on
//! its way to the engine, a flow still runs to its end, each child promoted
//! within one reconciler interval after the grace period. On every backend
//! (the server ones when their URL variable is set).

mod support;

use std::sync::Arc;
use std::time::Duration;

use ff_core::flow::{EdgeSpec, FlowSpec};
use ff_core::CompletionBackend;
use ff_engine::{dependency_reconciler, Engine};
use ff_testkit::faults::DroppingCompletions;

use support::{
    assert_completed, engine_config, for_each_backend, node, wait_for_flow, Journal, Kind, Store,
    Workers,
};

for_each_backend!(every_child_is_promoted_by_the_reconciler_when_the_stream_drops_everything);

async fn every_child_is_promoted_by_the_reconciler_when_the_stream_drops_everything(kind: Kind) {
    let Some(store) = Store::new(kind) else {
        return;
    };
    let opened = store.open().await;
    let backend = opened.engine();
    let reconciler = dependency_reconciler::Config {
        interval: Duration::from_millis(200),
        grace: Duration::from_millis(100),
        ..Default::default()
    };
    let dropping = Arc::new(DroppingCompletions::all(opened.completions()));
    let completions: Arc<dyn CompletionBackend> = dropping.clone();
    let engine = Engine::start(backend.clone(), completions, engine_config(reconciler));
    let journal = Arc::new(Journal::default());
    let workers = Workers::spawn(backend.clone(), 2, journal.clone());

    // A diamond, then a tail: a -> {b, c} -> d -> e.
    let spec = FlowSpec::new(
        ["a", "b", "c", "d", "e"].map(node).to_vec(),
        vec![
            EdgeSpec::new("a", "b"),
            EdgeSpec::new("a", "c"),
            EdgeSpec::new("b", "d"),
            EdgeSpec::new("c", "d"),
            EdgeSpec::new("d", "e"),
        ],
    );
    let parents: [(&str, &[&str]); 4] = [
        ("b", &["a"]),
        ("c", &["a"]),
        ("d", &["b", "c"]),
        ("e", &["d"]),
    ];
    let flow = backend.create_flow(spec).await.expect("create flow");
    let view = wait_for_flow(&*backend, flow.flow_id, Duration::from_secs(15)).await;
    assert_completed(&view);

    // Each child became claimable within one interval after the grace of
    // its last parent's completion (plus a second for a loaded machine).
    let bound = reconciler.interval + reconciler.grace + Duration::from_secs(1);
    for (child, of) in parents {
        let ready = of
            .iter()
            .map(|p| journal.completed_at(p).expect("parent completed"))
            .max()
            .expect("a child has parents");
        let claimed = journal.claimed_at(child).expect("child claimed");
        let waited = claimed.saturating_duration_since(ready);
        eprintln!("{child}: claimed {waited:?} after its last parent completed");
        assert!(waited <= bound, "{child} waited {waited:?} > {bound:?}");
    }

    workers.stop().await;
    // The last completion has no child; wait for the reconciler to dispatch it.
    let deadline = tokio::time::Instant::now() + bound;
    while !backend
        .undispatched_completions(0, 100)
        .await
        .expect("read outbox")
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "outbox not drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = engine.shutdown().await;
    eprintln!("{stats:?}");
    // The listener subscribes as the engine starts, so a completion that
    // commits first never reaches the stream at all: at least one was
    // dropped, and the listener heard none.
    assert!(dropping.dropped() >= 1, "the stream lost every completion");
    assert_eq!(stats.completions(), 0, "the listener heard nothing");
    assert_eq!(stats.cascades, stats.reconciled, "{stats:?}");
    assert!(stats.reconciled >= 5, "{stats:?}");
    assert_eq!(
        stats.cascade_promoted + stats.blocked_reconciled,
        4,
        "{stats:?}"
    );
    opened.close().await;
}
