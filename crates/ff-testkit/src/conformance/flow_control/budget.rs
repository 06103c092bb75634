//! Budgets: usage reported by workers against a scope's soft and hard
//! limits; a hard breach stops the scope's claims.

use ff_core::flow::FlowSpec;
use ff_core::flow_control::{PolicySpec, Standing, UsageReport};
use ff_core::{ErrorKind, JsonText, State};

use super::super::flow_support::{create, edge, node};
use super::super::support::*;
use super::support::*;
use crate::BackendFactory;

fn report(key: &str, n: u64) -> UsageReport {
    UsageReport {
        dedup_key: key.to_owned(),
        amounts: tokens(n),
    }
}

pub async fn budget_hard_breach_stops_claims(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    put(
        &b,
        "acme-tokens",
        PolicySpec::Budget(budget("acme", None, Some(100))),
    )
    .await;
    submit(&b, job("q").fairness_key("acme")).await;
    let next = submit(&b, job("q").fairness_key("acme")).await;
    let other = submit(&b, job("q").fairness_key("globex")).await;
    let first = claim_one(&b, "q").await;
    let statuses = b
        .engine
        .report_usage(&first.handle, &report("r1", 100))
        .await
        .expect("report");
    assert_eq!(statuses.len(), 1);
    assert_eq!(
        statuses[0].standing,
        Standing::Hard {
            dimensions: vec!["tokens".to_owned()]
        }
    );
    assert_eq!(statuses[0].remaining["tokens"], Some(0));
    let claimed = b.engine.claim(&claim_req("q", 10)).await.expect("claim");
    assert_eq!(ids(&claimed), [other], "only the other scope runs");
    assert_eq!(get(&b, next).await.state, State::Ready);
    let status = b
        .engine
        .budget("default", "acme-tokens")
        .await
        .expect("budget");
    assert_eq!(status.used["tokens"], 100);
}

pub async fn budget_soft_breach_recorded(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    put(
        &b,
        "acme-tokens",
        PolicySpec::Budget(budget("acme", Some(50), Some(100))),
    )
    .await;
    submit(&b, job("q").fairness_key("acme")).await;
    submit(&b, job("q").fairness_key("acme")).await;
    let first = claim_one(&b, "q").await;
    b.engine
        .report_usage(&first.handle, &report("r1", 60))
        .await
        .expect("report");
    let status = b
        .engine
        .budget("default", "acme-tokens")
        .await
        .expect("budget");
    assert_eq!(
        status.standing,
        Standing::Soft {
            dimensions: vec!["tokens".to_owned()]
        }
    );
    assert_eq!(status.remaining["tokens"], Some(40));
    claim_one(&b, "q").await;
}

pub async fn budget_report_idempotent(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    put(
        &b,
        "acme-tokens",
        PolicySpec::Budget(budget("acme", None, Some(1_000))),
    )
    .await;
    submit(&b, job("q").fairness_key("acme")).await;
    let first = claim_one(&b, "q").await;
    for _ in 0..3 {
        b.engine
            .report_usage(&first.handle, &report("same", 10))
            .await
            .expect("report");
    }
    b.engine
        .report_usage(&first.handle, &report("other", 5))
        .await
        .expect("report");
    let status = b
        .engine
        .budget("default", "acme-tokens")
        .await
        .expect("budget");
    assert_eq!(status.used["tokens"], 15);
}

pub async fn budget_hard_breach_cancels_pending_flow_members(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let mut spec = budget("acme", None, Some(10));
    spec.cancel_pending = true;
    put(&b, "acme-tokens", PolicySpec::Budget(spec)).await;
    let nodes = ["a", "b", "c"].map(|key| {
        let mut n = node(key);
        n.execution = n.execution.fairness_key("acme");
        n
    });
    let flow = create(&b, FlowSpec::new(nodes.to_vec(), vec![edge("a", "b")])).await;
    let bystander = submit(&b, job("q").fairness_key("globex")).await;
    let a = b
        .engine
        .claim(&ff_core::ClaimRequest::new(["a"], "w"))
        .await
        .expect("claim a")
        .remove(0);
    b.engine
        .report_usage(&a.handle, &report("r1", 10))
        .await
        .expect("report");
    for key in ["b", "c"] {
        assert_eq!(
            get(&b, flow.nodes[key]).await.state,
            State::Cancelled,
            "pending member {key} cancelled"
        );
    }
    assert_eq!(get(&b, flow.nodes["a"]).await.state, State::Running);
    assert_eq!(get(&b, bystander).await.state, State::Ready);
    b.engine
        .complete(&a.handle, JsonText::null())
        .await
        .expect("the running member may finish");
}

pub async fn budget_resets_each_interval(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let mut spec = budget("acme", None, Some(10));
    spec.reset_every_ms = Some(60_000);
    put(&b, "acme-tokens", PolicySpec::Budget(spec)).await;
    submit(&b, job("q").fairness_key("acme")).await;
    submit(&b, job("q").fairness_key("acme")).await;
    let first = claim_one(&b, "q").await;
    b.engine
        .report_usage(&first.handle, &report("r1", 10))
        .await
        .expect("report");
    claim_none(&b, "q").await;
    b.clock.advance(ms(60_000));
    claim_one(&b, "q").await;
    let status = b
        .engine
        .budget("default", "acme-tokens")
        .await
        .expect("budget");
    assert_eq!(status.standing, Standing::Within);
    assert!(status.used.is_empty());
}

pub async fn stale_handle_cannot_report_usage(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    put(
        &b,
        "acme-tokens",
        PolicySpec::Budget(budget("acme", None, Some(10))),
    )
    .await;
    submit(&b, job("q").fairness_key("acme")).await;
    let first = claim_one(&b, "q").await;
    b.engine
        .complete(&first.handle, JsonText::null())
        .await
        .expect("complete");
    expect_err(
        b.engine
            .report_usage(&first.handle, &report("late", 50))
            .await,
        ErrorKind::NotActive,
    );
    let mut forged = first.handle.clone();
    forged.lease_epoch += 1;
    expect_err(
        b.engine.report_usage(&forged, &report("forged", 50)).await,
        ErrorKind::LeaseLost,
    );
    expect_invalid(
        b.engine.report_usage(&first.handle, &report("", 50)).await,
        "dedup_key",
    );
    let status = b
        .engine
        .budget("default", "acme-tokens")
        .await
        .expect("budget");
    assert!(status.used.is_empty(), "nothing was counted");
}
