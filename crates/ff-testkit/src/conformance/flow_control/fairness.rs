//! Fair shares: a lane a fair-share policy names is shared across
//! fairness keys by weight (smooth weighted round-robin), priority still
//! ordering within a key.

use std::collections::BTreeMap;

use ff_core::{ClaimRequest, SubmitRequest};

use super::super::support::*;
use super::support::*;
use crate::{BackendFactory, TestBackend};

async fn submit_keyed(b: &TestBackend, key: &str, n: usize) {
    let reqs: Vec<SubmitRequest> = (0..n).map(|_| job("q").fairness_key(key)).collect();
    for chunk in reqs.chunks(1_000) {
        b.engine.submit_batch(chunk.to_vec()).await.expect("submit");
    }
}

/// Claims `n` at a time until `total` are claimed; the fairness key of each
/// claim, in order.
async fn claim_keys(b: &TestBackend, n: u32, total: usize) -> Vec<String> {
    let mut keys = Vec::new();
    while keys.len() < total {
        let claimed = b.engine.claim(&claim_req("q", n)).await.expect("claim");
        assert!(!claimed.is_empty(), "work remained");
        for c in claimed {
            keys.push(get(b, c.handle.execution_id).await.fairness().to_owned());
        }
    }
    keys
}

fn shares(keys: &[String]) -> BTreeMap<&str, usize> {
    let mut out = BTreeMap::new();
    for k in keys {
        *out.entry(k.as_str()).or_insert(0) += 1;
    }
    out
}

pub async fn fair_share_weights(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    put(&b, "q-shares", fair("q", &[("a", 3), ("b", 2), ("c", 1)])).await;
    for key in ["a", "b", "c"] {
        submit_keyed(&b, key, 40).await;
    }
    let keys = claim_keys(&b, 6, 60).await;
    let got = shares(&keys);
    assert_eq!((got["a"], got["b"], got["c"]), (30, 20, 10), "{keys:?}");
}

pub async fn priority_within_fairness_key(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    put(&b, "q-shares", fair("q", &[])).await;
    let low = submit(&b, job("q").fairness_key("a")).await;
    let high = submit(&b, job("q").fairness_key("a").priority(10)).await;
    let other = submit(&b, job("q").fairness_key("b")).await;
    let claimed = b.engine.claim(&claim_req("q", 3)).await.expect("claim");
    let order = ids(&claimed);
    assert_eq!(order.len(), 3);
    let at = |id| order.iter().position(|x| *x == id).expect("claimed");
    assert!(at(high) < at(low), "priority orders within a key");
    assert!(at(other) < at(low), "the other key gets its turn first");
}

pub async fn late_fairness_key_gets_its_share(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    put(&b, "q-shares", fair("q", &[])).await;
    submit_keyed(&b, "early", 100).await;
    claim_keys(&b, 5, 50).await;
    submit_keyed(&b, "late", 20).await;
    let keys = claim_keys(&b, 5, 20).await;
    assert_eq!(shares(&keys)["late"], 10, "{keys:?}");
}

pub async fn lane_without_fair_share_keeps_claim_order(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let first = submit(&b, job("q").fairness_key("a")).await;
    let second = submit(&b, job("q").fairness_key("a")).await;
    b.clock.advance(ms(1));
    let third = submit(&b, job("q").fairness_key("b")).await;
    let claimed = b.engine.claim(&claim_req("q", 3)).await.expect("claim");
    assert_eq!(ids(&claimed), [first, second, third]);
}

/// Three keys weighted 3:2:1 with a 5,000 backlog each and four workers:
/// over the first 3,000 claims each key's share is within 10% of its
/// weight, and a fourth key submitted later gets its share within the
/// next 100 claims.
pub async fn fairness_under_backlog(f: &dyn BackendFactory) {
    const BACKLOG: usize = 5_000;
    let b = f.open_default().await;
    put(
        &b,
        "q-shares",
        fair("q", &[("a", 3), ("b", 2), ("c", 1), ("d", 1)]),
    )
    .await;
    for key in ["a", "b", "c"] {
        submit_keyed(&b, key, BACKLOG).await;
    }
    let claims = parallel_claims(&b, 4, 3_000).await;
    let got = shares(&claims);
    for (key, weight) in [("a", 3.0), ("b", 2.0), ("c", 1.0)] {
        let expected = 3_000.0 * weight / 6.0;
        let share = got.get(key).copied().unwrap_or(0) as f64;
        assert!(
            (share - expected).abs() <= expected * 0.1,
            "{key}: {share} of 3000, expected {expected} ± 10%"
        );
    }
    submit_keyed(&b, "d", 200).await;
    let next = parallel_claims(&b, 4, 100).await;
    let late = shares(&next).get("d").copied().unwrap_or(0);
    // Its weight is 1 of 7: about 14 of 100.
    assert!(late >= 10, "the late key got {late} of the next 100 claims");
}

/// `workers` claimers taking 10 at a time until `total` are claimed.
async fn parallel_claims(b: &TestBackend, workers: usize, total: usize) -> Vec<String> {
    let claimed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let engine = b.engine.clone();
        let claimed = claimed.clone();
        tasks.push(tokio::spawn(async move {
            let req = ClaimRequest::new(["q"], format!("w{w}")).max(10);
            loop {
                if claimed.lock().expect("lock").len() >= total {
                    return;
                }
                let got = engine.claim(&req).await.expect("claim");
                assert!(!got.is_empty(), "work remained");
                let mut keys = Vec::new();
                for c in got {
                    let exec = engine
                        .get_execution(c.handle.execution_id)
                        .await
                        .expect("get");
                    keys.push(exec.fairness().to_owned());
                }
                claimed.lock().expect("lock").extend(keys);
            }
        }));
    }
    for task in tasks {
        task.await.expect("claimer");
    }
    let mut keys = claimed.lock().expect("lock").clone();
    keys.truncate(total);
    keys
}
