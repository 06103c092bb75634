//! Policies as resources: created, changed and removed by name, versioned,
//! checked, namespaced, and read by the very next claim.

use ff_core::flow_control::{FairSharePolicy, PolicySpec};
use ff_core::ErrorKind;

use super::super::support::*;
use super::support::*;
use crate::BackendFactory;

pub async fn policy_change_applies_to_next_claim(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    put(&b, "api", concurrency("api", 1)).await;
    for _ in 0..5 {
        submit(&b, job("q").concurrency_key("api")).await;
    }
    claim_one(&b, "q").await;
    claim_none(&b, "q").await;
    let raised = put(&b, "api", concurrency("api", 3)).await;
    assert_eq!(raised.version, 2);
    let claimed = b.engine.claim(&claim_req("q", 10)).await.expect("claim");
    assert_eq!(claimed.len(), 2, "the raised limit applies at once");
    assert!(b.engine.delete_policy(NS, "api").await.expect("delete"));
    let claimed = b.engine.claim(&claim_req("q", 10)).await.expect("claim");
    assert_eq!(claimed.len(), 2, "no policy, no limit");
}

pub async fn policy_crud_versions(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let first = put(&b, "api", concurrency("api", 2)).await;
    assert_eq!((first.version, first.name.as_str()), (1, "api"));
    put(&b, "api", concurrency("api", 4)).await;
    put(&b, "burst", rate("api", 10, 1_000, 10)).await;
    let listed = b.engine.policies(NS).await.expect("list");
    let names: Vec<_> = listed
        .iter()
        .map(|p| (p.name.as_str(), p.version))
        .collect();
    assert_eq!(names, [("api", 2), ("burst", 1)]);
    assert_eq!(listed[0].spec, concurrency("api", 4));
    assert!(b.engine.delete_policy(NS, "api").await.expect("delete"));
    assert!(!b
        .engine
        .delete_policy(NS, "api")
        .await
        .expect("delete again"));
    let again = put(&b, "api", concurrency("api", 1)).await;
    assert_eq!(again.version, 1, "a removed policy starts over");
}

pub async fn invalid_policy_rejected_nothing_stored(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    expect_invalid(
        b.engine.put_policy(NS, "api", concurrency("api", 0)).await,
        "limit",
    );
    expect_invalid(
        b.engine
            .put_policy(NS, "api", rate("api", 0, 1_000, 1))
            .await,
        "n",
    );
    expect_invalid(
        b.engine
            .put_policy(NS, "bad name", concurrency("api", 1))
            .await,
        "name",
    );
    let unfair = PolicySpec::FairShare(FairSharePolicy {
        lane: "q".to_owned(),
        weights: [("a".to_owned(), 0)].into(),
        default_weight: 1,
    });
    expect_invalid(b.engine.put_policy(NS, "shares", unfair).await, "weights");
    let mut empty = budget("acme", None, None);
    empty.limits.clear();
    expect_invalid(
        b.engine
            .put_policy(NS, "b", PolicySpec::Budget(empty))
            .await,
        "limits",
    );
    assert!(b.engine.policies(NS).await.expect("list").is_empty());
    expect_err(b.engine.budget(NS, "b").await, ErrorKind::NotFound);
}

pub async fn flow_control_keys_are_validated(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    expect_invalid(
        b.engine.submit(job("q").concurrency_key("has space")).await,
        "concurrency_key",
    );
    expect_invalid(b.engine.submit(job("q").rate_key("")).await, "rate_key");
    expect_invalid(
        b.engine.submit(job("q").fairness_key("a\nb")).await,
        "fairness_key",
    );
    claim_none(&b, "q").await;
}

pub async fn policies_are_namespaced(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    b.engine
        .put_policy("other", "api", concurrency("api", 1))
        .await
        .expect("put");
    for _ in 0..3 {
        submit(&b, job("q").concurrency_key("api")).await;
    }
    let claimed = b.engine.claim(&claim_req("q", 10)).await.expect("claim");
    assert_eq!(
        claimed.len(),
        3,
        "another namespace's policy does not apply"
    );
    assert!(b.engine.policies(NS).await.expect("list").is_empty());
    assert_eq!(b.engine.policies("other").await.expect("list").len(), 1);
}
