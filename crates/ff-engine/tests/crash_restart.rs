//! A crash mid-flow loses nothing and runs nothing twice: the engine and its
//! workers run against a backend that dies after its k-th write; then the
//! database is reopened, a fresh engine and workers finish the flow, and
//! the workers' journal is checked against what the database recorded.
//!
//! Work that was claimed but not completed when the crash hit comes back
//! once its lease expires; a completion whose cascade never committed stays
//! undispatched in the outbox until the new engine's reconciler takes it.
//! On every backend (the server ones when their URL variable is set).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ff_core::execution::AttemptEnd;
use ff_core::flow::{EdgeSpec, FlowSpec};
use ff_core::{EngineBackend, FlowId};
use ff_engine::{dependency_reconciler, Engine, EngineConfig};
use ff_testkit::faults::CrashingBackend;

use support::{
    assert_completed, engine_config, for_each_backend, node, wait_for_flow, Entry, Event, Journal,
    Kind, Store, Workers,
};

for_each_backend!(
    crash_early_in_the_fan_out,
    crash_around_the_fan_in,
    crash_in_the_chain,
);

async fn crash_early_in_the_fan_out(kind: Kind) {
    crash_after(12, kind).await;
}

async fn crash_around_the_fan_in(kind: Kind) {
    crash_after(26, kind).await;
}

async fn crash_in_the_chain(kind: Kind) {
    crash_after(40, kind).await;
}

const WORKERS: usize = 3;

fn config() -> EngineConfig {
    engine_config(dependency_reconciler::Config {
        interval: Duration::from_millis(200),
        grace: Duration::from_millis(100),
        ..Default::default()
    })
}

/// A fan-out, a fan-in and a chain: a -> b0..b5 -> c -> d0 -> .. -> d7.
/// Sixteen nodes take at least 47 writes (a claim and a complete each, a
/// cascade for every completion but the last), so each crash point below
/// lands mid-flow; the services' scans, also writes, only bring it earlier.
fn spec() -> FlowSpec {
    let fan: Vec<String> = (0..6).map(|i| format!("b{i}")).collect();
    let chain: Vec<String> = (0..8).map(|i| format!("d{i}")).collect();
    let mut nodes = vec![node("a"), node("c")];
    nodes.extend(fan.iter().chain(&chain).map(|k| node(k)));
    let mut edges: Vec<EdgeSpec> = fan
        .iter()
        .flat_map(|k| [EdgeSpec::new("a", k), EdgeSpec::new(k, "c")])
        .collect();
    edges.push(EdgeSpec::new("c", &chain[0]));
    edges.extend(chain.windows(2).map(|w| EdgeSpec::new(&w[0], &w[1])));
    FlowSpec::new(nodes, edges)
}

async fn crash_after(writes: u64, kind: Kind) {
    let Some(store) = Store::new(kind) else {
        return;
    };
    let journal = Arc::new(Journal::default());

    // Before the crash: everything goes through the crashing handle, so the
    // engine and the workers all stop when it dies.
    let opened = store.open().await;
    let backend = opened.engine();
    let flow = backend.create_flow(spec()).await.expect("create flow");
    let crashing = Arc::new(CrashingBackend::new(backend.clone(), writes));
    let engine = Engine::start(crashing.clone(), opened.completions(), config());
    let workers = Workers::spawn(crashing.clone(), WORKERS, journal.clone());
    tokio::time::timeout(Duration::from_secs(10), workers.join())
        .await
        .expect("the crash stops every worker");
    assert!(crashing.crashed());
    let before = engine.shutdown().await;
    let view = backend.get_flow(flow.flow_id).await.expect("read flow");
    let done = view.nodes.iter().filter(|n| n.state.is_terminal()).count();
    eprintln!(
        "crash after {writes} writes: {done}/{} nodes done, {} journal entries; {before:?}",
        view.nodes.len(),
        journal.entries().len()
    );
    assert!(!view.state.is_terminal(), "the crash hit mid-flow");
    let at_crash = journal.entries().len();
    assert!(
        journal.entries().iter().any(|e| e.event == Event::Claimed),
        "the crash hit after the workers had started"
    );
    opened.close().await;
    drop((crashing, backend, opened));

    // After the restart: the same database, no wrapper.
    let opened = store.open().await;
    let backend = opened.engine();
    let engine = Engine::start(backend.clone(), opened.completions(), config());
    let workers = Workers::spawn(backend.clone(), WORKERS, journal.clone());
    let view = wait_for_flow(&*backend, flow.flow_id, Duration::from_secs(15)).await;
    assert_completed(&view);
    workers.stop().await;
    let claimed_after = journal.entries()[at_crash..]
        .iter()
        .filter(|e| e.event == Event::Claimed)
        .count();
    assert!(
        claimed_after >= 1,
        "the restarted workers ran what the crash left"
    );
    drain_outbox(&*backend).await;
    let after = engine.shutdown().await;
    eprintln!("after restart: {after:?}");

    check_journal(&*backend, flow.flow_id, &journal.entries()).await;
    opened.close().await;
}

/// Waits until every completion has been cascaded: none is lost.
async fn drain_outbox(backend: &dyn EngineBackend) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let left = backend
            .undispatched_completions(0, 100)
            .await
            .expect("read outbox");
        if left.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "undispatched: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every node: one accepted `complete`, matching the one completed attempt
/// the database holds, and no claim after it.
async fn check_journal(backend: &dyn EngineBackend, flow: FlowId, journal: &[Entry]) {
    let view = backend.get_flow(flow).await.expect("read flow");
    let mut by_node: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for entry in journal {
        by_node.entry(entry.node.as_str()).or_default().push(entry);
    }
    let mut reclaimed = 0;
    for node in &view.nodes {
        let steps = by_node.get(node.key.as_str()).cloned().unwrap_or_default();
        let completes: Vec<usize> = steps
            .iter()
            .enumerate()
            .filter(|(_, e)| e.event == Event::Completed)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            completes.len(),
            1,
            "{}: one accepted complete: {steps:?}",
            node.key
        );
        let done = steps[completes[0]];
        assert!(
            steps[completes[0] + 1..]
                .iter()
                .all(|e| e.event != Event::Claimed),
            "{}: claimed again after it completed: {steps:?}",
            node.key
        );
        let claims = steps.iter().filter(|e| e.event == Event::Claimed).count();
        if claims > 1 {
            reclaimed += 1;
        }

        let exec = backend
            .get_execution(node.execution_id)
            .await
            .expect("read node");
        let completed: Vec<_> = exec
            .attempts
            .iter()
            .filter(|a| a.end == Some(AttemptEnd::Completed))
            .collect();
        assert_eq!(completed.len(), 1, "{}: {:?}", node.key, exec.attempts);
        assert_eq!(
            (completed[0].attempt, completed[0].lease_epoch),
            (done.attempt, done.epoch),
            "{}: the database's completed attempt is the journal's",
            node.key
        );
        // Each earlier claim's attempt ended some other way (its lease ran
        // out after the crash): it never completed.
        for earlier in steps.iter().filter(|e| e.event == Event::Claimed) {
            if (earlier.attempt, earlier.epoch) != (done.attempt, done.epoch) {
                let record = exec
                    .attempts
                    .iter()
                    .find(|a| a.lease_epoch == earlier.epoch)
                    .expect("every journaled claim is a recorded attempt");
                assert_ne!(record.end, Some(AttemptEnd::Completed));
            }
        }
    }
    eprintln!("{reclaimed} node(s) re-claimed after the crash");
}
