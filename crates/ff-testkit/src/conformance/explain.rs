//! "Why is this not running?": each holding reason, as `ff_core::explain`
//! reads it from the backend.

use ff_core::explain::{why, Explanation, Holding};
use ff_core::flow::FlowSpec;
use ff_core::suspension::{ResumeCondition, SuspendRequest};
use ff_core::{ErrorKind, ExecutionId, Failure, JsonText, Outcome, State};

use super::flow_support::{claim_node, create, edge, node};
use super::support::*;
use crate::{BackendFactory, TestBackend};

async fn explained(b: &TestBackend, id: ExecutionId) -> Explanation {
    why(&*b.engine, "default", id).await.expect("why")
}

pub async fn why_names_each_holding_reason(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let now = b.clock.now_ms();

    let later = submit(&b, job("a").run_at(now + 5_000)).await;
    assert_eq!(
        explained(&b, later).await.holding,
        Holding::RunAt { at: now + 5_000 }
    );

    let first = submit(&b, job("q").priority(5)).await;
    let second = submit(&b, job("q").capabilities(["gpu"])).await;
    b.clock.advance(ms(1));
    let third = submit(&b, job("q")).await;
    assert_eq!(
        explained(&b, first).await.holding,
        Holding::Queued {
            ahead: 0,
            capabilities: Vec::new()
        }
    );
    assert_eq!(
        explained(&b, second).await.holding,
        Holding::Queued {
            ahead: 1,
            capabilities: vec!["gpu".to_owned()]
        }
    );
    assert!(matches!(
        explained(&b, third).await.holding,
        Holding::Queued { ahead: 2, .. }
    ));

    let retried = submit(&b, job("r").retry(exact_retry(2, 100))).await;
    let claimed = claim_one(&b, "r").await;
    let running = explained(&b, retried).await;
    assert_eq!(running.state, State::Running);
    assert!(matches!(
        running.holding,
        Holding::Running {
            worker_id: Some(_),
            ..
        }
    ));
    b.engine
        .fail(&claimed.handle, Failure::retryable("boom"))
        .await
        .expect("fail");
    assert_eq!(
        explained(&b, retried).await.holding,
        Holding::RetryBackoff {
            at: b.clock.now_ms() + 100,
            attempt: 1
        }
    );

    let flow = create(
        &b,
        FlowSpec::new(
            vec![node("p1"), node("p2"), node("child")],
            vec![edge("p1", "child"), edge("p2", "child")],
        ),
    )
    .await;
    assert_eq!(
        explained(&b, flow.nodes["child"]).await.holding,
        Holding::Parents {
            waiting_on: vec!["p1".to_owned(), "p2".to_owned()]
        }
    );
    let parent = claim_node(&b, "p1").await;
    let req = SuspendRequest::on("s1", ["approve"])
        .condition(ResumeCondition::Any)
        .timeout(60_000, ff_core::suspension::TimeoutPolicy::Fail);
    b.engine
        .suspend(&parent.handle, &req)
        .await
        .expect("suspend");
    assert_eq!(
        explained(&b, flow.nodes["p1"]).await.holding,
        Holding::Suspended {
            waitpoints: vec!["approve".to_owned()],
            condition: ResumeCondition::Any,
            timeout_at: Some(b.clock.now_ms() + 60_000),
        }
    );

    let done = submit(&b, job("d")).await;
    let claimed = claim_one(&b, "d").await;
    b.engine
        .complete(&claimed.handle, JsonText::null())
        .await
        .expect("complete");
    assert_eq!(
        explained(&b, done).await.holding,
        Holding::Finished {
            outcome: Outcome::Completed
        }
    );
    expect_err(why(&*b.engine, "other", done).await, ErrorKind::NotFound);

    why_names_flow_control_holds(&b).await;
}

/// A concurrency key at its limit, a rate key without a token and a
/// hard-breached budget, each named with what holds it.
async fn why_names_flow_control_holds(b: &TestBackend) {
    use ff_core::flow_control::{
        BudgetPolicy, ConcurrencyPolicy, DimensionLimit, Held, KeyPattern, PolicySpec,
        RateLimitPolicy, UsageReport,
    };
    let pattern = |k: &str| KeyPattern::parse(k, &ff_core::Limits::default()).expect("pattern");
    let put = |name: &'static str, spec: PolicySpec| async move {
        b.engine
            .put_policy("default", name, spec)
            .await
            .expect("put policy");
    };
    put(
        "one",
        PolicySpec::Concurrency(ConcurrencyPolicy {
            pattern: pattern("api"),
            limit: 1,
        }),
    )
    .await;
    put(
        "slow",
        PolicySpec::Rate(RateLimitPolicy {
            pattern: pattern("feed"),
            n: 1,
            window_ms: 60_000,
            burst: 1,
        }),
    )
    .await;
    put(
        "acme",
        PolicySpec::Budget(BudgetPolicy {
            scope: "acme".into(),
            limits: vec![DimensionLimit {
                dimension: "tokens".into(),
                soft: None,
                hard: Some(5),
            }],
            reset_every_ms: None,
            cancel_pending: false,
        }),
    )
    .await;
    submit(b, job("c").concurrency_key("api")).await;
    let second = submit(b, job("c").concurrency_key("api")).await;
    claim_one(b, "c").await;
    assert_eq!(
        explained(b, second).await.holding,
        Holding::Limited {
            held: Held::Concurrency {
                key: "api".into(),
                running: 1,
                limit: 1
            }
        }
    );
    submit(b, job("f").rate_key("feed")).await;
    let starved = submit(b, job("f").rate_key("feed")).await;
    claim_one(b, "f").await;
    assert_eq!(
        explained(b, starved).await.holding,
        Holding::Limited {
            held: Held::Rate {
                key: "feed".into(),
                next_at: b.clock.now_ms() + 60_000
            }
        }
    );
    submit(b, job("s").fairness_key("acme")).await;
    let broke = submit(b, job("s").fairness_key("acme")).await;
    let spender = claim_one(b, "s").await;
    let report = UsageReport {
        dedup_key: "r".into(),
        amounts: [("tokens".to_owned(), 5)].into(),
    };
    b.engine
        .report_usage(&spender.handle, &report)
        .await
        .expect("report");
    assert_eq!(
        explained(b, broke).await.holding,
        Holding::Limited {
            held: Held::Budget {
                policy: "acme".into(),
                dimensions: vec!["tokens".into()]
            }
        }
    );
}
