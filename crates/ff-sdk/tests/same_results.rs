//! The same SDK scenario embedded and over HTTP gives the same results: a
//! flow with a node that fails once with a plain error and then succeeds,
//! a node cancelled while blocked (so its child is skipped), and a node that
//! runs after the retried one.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use ff_core::flow::FlowState;
use ff_sdk::{EdgeSpec, FlowSpec, JobContext, NodeSpec, Outcome, State, Worker};
use serde_json::{json, Value};

use support::{finished, on_both, request, Harness};

const LANE: &str = "same-results";

/// What one node ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeEnd {
    outcome: Outcome,
    attempts: u32,
    result: Option<Value>,
    /// The error of each attempt that recorded one.
    attempt_errors: Vec<String>,
}

/// Everything the two runs must agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    cancelled_while: State,
    nodes: BTreeMap<String, NodeEnd>,
    flow: FlowState,
}

fn node(key: &str, kind: &str) -> NodeSpec {
    NodeSpec::new(key, request(LANE, kind, json!({ "node": key })))
}

async fn scenario(h: Harness) -> Summary {
    let client = h.client.clone();
    let spec = FlowSpec::new(
        vec![
            node("flaky", "flaky"),
            node("after", "step"),
            node("held", "step"),
            node("tail", "step"),
        ],
        vec![
            EdgeSpec::new("flaky", "after"),
            EdgeSpec::new("flaky", "held"),
            EdgeSpec::new("held", "tail"),
        ],
    );
    let flow = client.create_flow(spec).await.expect("create the flow");
    assert!(flow.created);

    // Cancelled while it waits on `flaky`, before any worker runs.
    let held = flow.nodes["held"];
    let cancelled_while = client.get_execution(held).await.expect("held").state;
    let cancel = client.cancel(held).await.expect("cancel held");
    assert!(cancel.changed && cancel.outcome == Outcome::Cancelled);

    let worker = Worker::builder(client.clone())
        .lane(LANE)
        .concurrency(4)
        .claim_wait(Duration::from_millis(500))
        .handler("flaky", |ctx: JobContext| async move {
            if ctx.attempt() == 1 {
                // A plain error: a retryable failure.
                Err(std::io::Error::other("transient: the first attempt fails"))?;
            }
            Ok(json!({ "ok": ctx.attempt() }))
        })
        .handler("step", |ctx: JobContext| async move {
            let payload: Value = ctx.payload()?;
            Ok(json!({ "ran": payload["node"], "parents": ctx.inputs().map(|i| i.len()) }))
        })
        .start()
        .expect("start the worker");

    let mut nodes = BTreeMap::new();
    for (key, id) in &flow.nodes {
        let end = finished(&client, *id).await;
        let exec = client.get_execution(*id).await.expect("read the node");
        nodes.insert(
            key.clone(),
            NodeEnd {
                outcome: end.outcome,
                attempts: exec.attempt,
                result: end.decode().expect("result JSON"),
                attempt_errors: exec
                    .attempts
                    .iter()
                    .filter_map(|a| a.error.clone())
                    .collect(),
            },
        );
    }
    let stats = worker.shutdown().await;
    assert_eq!((stats.completed, stats.retried), (2, 1), "{stats:?}");
    let flow_state = client.get_flow(flow.flow_id).await.expect("flow").state;
    let flows = client
        .list_flows(ff_core::flow::FlowFilter::default())
        .await
        .expect("list flows");
    assert_eq!(flows.items.len(), 1);
    assert_eq!((flows.items[0].id, flows.items[0].nodes), (flow.flow_id, 4));
    h.close().await;
    Summary {
        cancelled_while,
        nodes,
        flow: flow_state,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_and_http_give_the_same_results() {
    let (embedded, http) = on_both("same-results", scenario).await;
    assert_eq!(embedded, http, "the transports disagree");

    let end = |outcome, attempts, result: Option<Value>, errors: &[&str]| NodeEnd {
        outcome,
        attempts,
        result,
        attempt_errors: errors.iter().map(|e| (*e).to_owned()).collect(),
    };
    let expected = Summary {
        cancelled_while: State::Blocked,
        nodes: BTreeMap::from([
            (
                "flaky".to_owned(),
                end(
                    Outcome::Completed,
                    2,
                    Some(json!({"ok": 2})),
                    &["transient: the first attempt fails"],
                ),
            ),
            (
                "after".to_owned(),
                end(
                    Outcome::Completed,
                    1,
                    Some(json!({"ran": "after", "parents": 1})),
                    &[],
                ),
            ),
            ("held".to_owned(), end(Outcome::Cancelled, 0, None, &[])),
            ("tail".to_owned(), end(Outcome::Skipped, 0, None, &[])),
        ]),
        // A cancelled member does not fail its flow; no member failed.
        flow: FlowState::Completed,
    };
    assert_eq!(embedded, expected);
}
