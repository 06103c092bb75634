//! Flow control through the SDK on both transports: policies set and read
//! by the client, a handler's usage report breaching a budget, and `why`
//! naming what holds the scope's next execution.

mod support;

use std::time::Duration;

use ff_core::explain::Holding;
use ff_core::flow_control::{
    BudgetPolicy, ConcurrencyPolicy, DimensionLimit, Held, KeyPattern, PolicySpec, Standing,
};
use ff_sdk::{EngineError, JobContext, Outcome, Worker};
use serde_json::json;

use support::{eventually, finished, request, Harness, Transport};

const LANE: &str = "spend";

fn budget(hard: u64) -> PolicySpec {
    PolicySpec::Budget(BudgetPolicy {
        scope: "acme".into(),
        limits: vec![DimensionLimit {
            dimension: "tokens".into(),
            soft: None,
            hard: Some(hard),
        }],
        reset_every_ms: None,
        cancel_pending: false,
    })
}

async fn a_handler_spends_its_scope_budget(h: Harness) {
    let client = &h.client;
    let policy = client
        .put_policy("acme-tokens", &budget(1_000))
        .await
        .expect("put");
    assert_eq!(policy.version, 1);
    let limit = PolicySpec::Concurrency(ConcurrencyPolicy {
        pattern: KeyPattern::parse("model", &ff_sdk::Limits::default()).expect("pattern"),
        limit: 2,
    });
    client.put_policy("model", &limit).await.expect("put");
    assert_eq!(client.policies().await.expect("list").len(), 2);

    let worker = Worker::builder(client.clone())
        .lane(LANE)
        .claim_wait(Duration::from_millis(300))
        .handler("ask", |ctx: JobContext| async move {
            let statuses = ctx
                .report_usage(&format!("{}-call", ctx.id()), [("tokens", 600)])
                .await?;
            // No budget left to spend from once its policy is removed.
            Ok(json!({ "budgets": statuses.len() }))
        })
        .start()
        .expect("start");
    let keyed = |r: ff_sdk::SubmitRequest| r.fairness_key("acme").concurrency_key("model");
    let first = client
        .submit(keyed(request(LANE, "ask", json!({}))))
        .await
        .expect("submit")
        .id;
    let end = finished(client, first).await;
    assert_eq!(end.outcome, Outcome::Completed, "{end:?}");
    let second = client
        .submit(keyed(request(LANE, "ask", json!({}))))
        .await
        .expect("submit")
        .id;
    let end = finished(client, second).await;
    assert_eq!(end.outcome, Outcome::Completed, "{end:?}");
    let status = client.budget("acme-tokens").await.expect("budget");
    assert_eq!(status.used["tokens"], 1_200);
    assert!(
        matches!(status.standing, Standing::Hard { .. }),
        "{status:?}"
    );

    let third = client
        .submit(keyed(request(LANE, "ask", json!({}))))
        .await
        .expect("submit")
        .id;
    eventually("why names the breached budget", || async {
        matches!(
            client.why(third).await.expect("why").holding,
            Holding::Limited {
                held: Held::Budget { .. }
            }
        )
    })
    .await;
    client.delete_policy("acme-tokens").await.expect("delete");
    assert!(matches!(
        client.delete_policy("acme-tokens").await,
        Err(EngineError::NotFound { .. })
    ));
    let end = finished(client, third).await;
    assert_eq!(
        end.outcome,
        Outcome::Completed,
        "runs once the budget is gone"
    );
    worker.shutdown().await;
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded() {
    let h = Harness::start(Transport::Embedded, "flow_control").await;
    a_handler_spends_its_scope_budget(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http() {
    let h = Harness::start(Transport::Http, "flow_control").await;
    a_handler_spends_its_scope_budget(h).await;
}
