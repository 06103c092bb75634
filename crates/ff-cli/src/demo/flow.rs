//! The demo's flow: a fan-out of 100 nodes, their fan-in, then a diamond
//! whose check fails on purpose so its `on_failure` branch runs. Its own
//! small worker runs the nodes; the engine's completion listener promotes
//! them. Created with an idempotency key, so a restart re-finds it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ff_core::flow::{EdgeCondition, EdgeSpec, FlowSpec, FlowState, FlowView, Join, NodeSpec};
use ff_core::{
    ClaimRequest, EngineBackend, Failure, FlowId, JsonText, RetryPolicy, State, SubmitRequest,
};
use ff_engine::shutdown::{self, Signal};

/// The lane the flow's nodes run on.
const LANE: &str = "demo-flow";
/// The kind that fails on purpose.
const FAILING: &str = "flow.check";
const PARTS: usize = 100;

fn node(key: &str, kind: &str) -> NodeSpec {
    let payload = JsonText::from_value(&serde_json::json!({ "node": key }));
    NodeSpec::new(
        key,
        SubmitRequest::new(LANE, kind, payload).retry(RetryPolicy::none()),
    )
}

fn part(i: usize) -> String {
    format!("part-{i:03}")
}

/// split → part-000..099 → merge → check; check →(on_success) publish,
/// check →(on_failure) repair; publish, repair → finish (any_of).
fn spec() -> FlowSpec {
    let mut nodes = vec![node("split", "flow.step"), node("merge", "flow.step")];
    let mut edges = Vec::new();
    for i in 0..PARTS {
        nodes.push(node(&part(i), "flow.step"));
        edges.push(EdgeSpec::new("split", part(i)));
        edges.push(EdgeSpec::new(part(i), "merge"));
    }
    nodes.push(node("check", FAILING));
    nodes.push(node("publish", "flow.step"));
    nodes.push(node("repair", "flow.step"));
    nodes.push(node("finish", "flow.step").join(Join::AnyOf));
    edges.push(EdgeSpec::new("merge", "check"));
    edges.push(EdgeSpec::new("check", "publish"));
    edges.push(EdgeSpec::new("check", "repair").condition(EdgeCondition::OnFailure));
    edges.push(EdgeSpec::new("publish", "finish").condition(EdgeCondition::Always));
    edges.push(EdgeSpec::new("repair", "finish"));
    FlowSpec::new(nodes, edges).idempotency_key("demo-flow")
}

/// Runs the flow to its end; `None` when interrupted first.
pub async fn run(
    backend: Arc<dyn EngineBackend>,
    interrupt: &mut Signal,
) -> anyhow::Result<Option<(FlowView, Duration)>> {
    let started = Instant::now();
    let created = backend.create_flow(spec()).await?;
    let (stop, stopped) = shutdown::channel();
    let worker = tokio::spawn(work(backend.clone(), stopped));
    let view = wait_for_end(&*backend, created.flow_id, interrupt).await;
    stop.trigger();
    if let Err(error) = worker.await {
        tracing::error!(%error, "flow worker failed");
    }
    Ok(view?.map(|view| (view, started.elapsed())))
}

/// Claims the flow's nodes and runs them: `flow.check` fails, the rest complete.
async fn work(backend: Arc<dyn EngineBackend>, mut stop: Signal) {
    let req = ClaimRequest::new([LANE], "demo-flow-worker").max(100);
    while !stop.is_triggered() {
        let claimed = tokio::select! {
            _ = stop.wait() => break,
            claimed = backend.claim_wait(&req, Duration::from_millis(500)) => claimed,
        };
        let claimed = match claimed {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "flow claim failed");
                stop.sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let reports = claimed.into_iter().map(|job| {
            let backend = backend.clone();
            async move {
                let outcome = if job.kind == FAILING {
                    let failure =
                        Failure::permanent("the check fails on purpose, to show on_failure");
                    backend.fail(&job.handle, failure).await.map(|_| ())
                } else {
                    let parents = job.inputs.as_ref().map_or(0, |i| i.len());
                    let result = serde_json::json!({ "node": job.node_key, "parents": parents });
                    backend
                        .complete(&job.handle, JsonText::from_value(&result))
                        .await
                        .map(|_| ())
                };
                if let Err(error) = outcome {
                    tracing::warn!(%error, "flow node report refused");
                }
            }
        });
        futures::future::join_all(reports).await;
    }
}

async fn wait_for_end(
    backend: &dyn EngineBackend,
    flow: FlowId,
    interrupt: &mut Signal,
) -> anyhow::Result<Option<FlowView>> {
    loop {
        let view = backend.get_flow(flow).await?;
        if view.state != FlowState::Running {
            return Ok(Some(view));
        }
        // `sleep` answers false when an interrupt cut it short.
        if !interrupt.sleep(Duration::from_millis(20)).await {
            return Ok(None);
        }
    }
}

/// The outcome of every node, the 100 parts folded into one line.
pub fn render(view: &FlowView, elapsed: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nflow {} ({} nodes): {} in {:.2} s",
        view.id,
        view.nodes.len(),
        view.state.as_str(),
        elapsed.as_secs_f64()
    );
    for node in &view.nodes {
        if node.key.starts_with("part-") {
            continue;
        }
        let _ = writeln!(out, "  {:<22} {}", node.key, node.state);
        if node.key == "split" {
            let range = format!("part-000..{:03}", PARTS - 1);
            let _ = writeln!(out, "  {range:<22} {}", parts_line(view).join(", "));
        }
    }
    if view.state == FlowState::Failed {
        out.push_str(
            "  (a flow with a failed member ends failed: `check` fails on purpose, so its\n",
        );
        out.push_str("   on_failure branch `repair` ran and `publish` was skipped)\n");
    }
    out
}

fn parts_line(view: &FlowView) -> Vec<String> {
    let mut counts: BTreeMap<State, usize> = BTreeMap::new();
    for node in view.nodes.iter().filter(|n| n.key.starts_with("part-")) {
        *counts.entry(node.state).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect()
}
