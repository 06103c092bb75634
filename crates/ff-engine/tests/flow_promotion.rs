//! Flows run end to end on the engine and every backend (the server ones
//! when their URL variable is set): in-test workers claim and complete
//! nodes, and the completion listener promotes each child as its parents
//! finish — at push speed, which the lag histogram shows.

mod support;

use std::sync::Arc;
use std::time::Duration;

use ff_core::flow::{EdgeSpec, FlowSpec, FlowView};
use ff_engine::{dependency_reconciler, Engine, StatsSnapshot};

use support::{
    assert_completed, engine_config, for_each_backend, node, wait_for_flow, Journal, Kind, Store,
    Workers,
};

for_each_backend!(
    a_chain_of_ten_runs_to_completion,
    a_fan_out_and_fan_in_runs_to_completion,
);

/// Runs `spec` to its end with `workers` workers on the backend `kind`;
/// returns the flow's final view and the engine's stats, or `None` when a
/// server backend is asked for and not configured (the test then skips,
/// loudly).
async fn run_flow(spec: FlowSpec, workers: usize, kind: Kind) -> Option<(FlowView, StatsSnapshot)> {
    let store = Store::new(kind)?;
    let opened = store.open().await;
    let backend = opened.engine();
    // The production reconciler pacing: any promotion it made would take
    // seconds, so a fast flow proves the listener did the work.
    let config = engine_config(dependency_reconciler::Config::default());
    let engine = Engine::start(backend.clone(), opened.completions(), config);
    let journal = Arc::new(Journal::default());
    let workers = Workers::spawn(backend.clone(), workers, journal);

    let flow = backend.create_flow(spec).await.expect("create flow");
    let view = wait_for_flow(&*backend, flow.flow_id, Duration::from_secs(10)).await;

    workers.stop().await;
    let stats = engine.shutdown().await;
    opened.close().await;
    Some((view, stats))
}

fn assert_push_speed(label: &str, stats: &StatsSnapshot, promotions: u64) {
    let lag = stats.promotion_lag;
    let (p50, p99) = (
        lag.p50_ms().unwrap_or(f64::NAN),
        lag.p99_ms().unwrap_or(f64::NAN),
    );
    eprintln!(
        "{label}: {} promotions timed, lag p50 {p50:.1} ms, p99 {p99:.1} ms, mean {:.1} ms; {stats:?}",
        lag.count,
        lag.mean_ms().unwrap_or(f64::NAN),
    );
    // The reconciler may decide a node in the instant between its parent's
    // commit and the listener's cascade; the two together promote them all.
    assert_eq!(
        stats.cascade_promoted + stats.blocked_reconciled,
        promotions,
        "{stats:?}"
    );
    assert!(lag.count >= 1, "the histogram recorded promotions");
    assert_eq!(lag.count, lag.buckets.iter().sum::<u64>());
    // Far below the reconciler's 2 s grace: the stream promoted them.
    assert!(p50 < 500.0, "p50 {p50} ms");
    assert_eq!(stats.cascade_errors, 0, "{stats:?}");
}

async fn a_chain_of_ten_runs_to_completion(kind: Kind) {
    let keys: Vec<String> = (0..10).map(|i| format!("step-{i}")).collect();
    let nodes = keys.iter().map(|k| node(k)).collect();
    let edges = keys
        .windows(2)
        .map(|w| EdgeSpec::new(&w[0], &w[1]))
        .collect();
    let Some((view, stats)) = run_flow(FlowSpec::new(nodes, edges), 2, kind).await else {
        return;
    };

    assert_completed(&view);
    assert_eq!(view.nodes.len(), 10);
    assert!(stats.cascades >= 10, "every completion cascaded: {stats:?}");
    assert_push_speed("chain of 10", &stats, 9);
}

async fn a_fan_out_and_fan_in_runs_to_completion(kind: Kind) {
    let leaves: Vec<String> = (0..8).map(|i| format!("leaf-{i}")).collect();
    let mut nodes = vec![node("root"), node("join")];
    nodes.extend(leaves.iter().map(|k| node(k)));
    let edges = leaves
        .iter()
        .flat_map(|k| [EdgeSpec::new("root", k), EdgeSpec::new(k, "join")])
        .collect();
    let Some((view, stats)) = run_flow(FlowSpec::new(nodes, edges), 4, kind).await else {
        return;
    };

    assert_completed(&view);
    assert_eq!(view.nodes.len(), 10);
    // One cascade promotes all eight leaves; the last leaf's promotes the join.
    assert_push_speed("fan-out 8, fan-in", &stats, 9);
}
