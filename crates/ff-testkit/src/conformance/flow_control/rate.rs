//! Rate keys: a token bucket per key, refilled by the store's clock, one
//! token taken by each claim of a keyed execution.

use super::super::support::*;
use super::support::*;
use crate::{BackendFactory, TestBackend};

async fn claimed_now(b: &TestBackend, lane: &str) -> usize {
    b.engine
        .claim(&claim_req(lane, 100))
        .await
        .expect("claim")
        .len()
}

pub async fn rate_limit_window(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    // Two per second: a token every 500 ms, at most two saved up.
    put(&b, "per-second", rate("api", 2, 1_000, 2)).await;
    for _ in 0..10 {
        submit(&b, job("q").rate_key("api")).await;
    }
    assert_eq!(claimed_now(&b, "q").await, 2);
    b.clock.advance(ms(499));
    assert_eq!(claimed_now(&b, "q").await, 0, "no token before 500 ms");
    b.clock.advance(ms(1));
    assert_eq!(claimed_now(&b, "q").await, 1);
    b.clock.advance(ms(1_000));
    assert_eq!(claimed_now(&b, "q").await, 2);
    b.clock.advance(ms(10_000));
    assert_eq!(
        claimed_now(&b, "q").await,
        2,
        "idling saves no more than the burst"
    );
}

pub async fn rate_burst(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    put(&b, "bursty", rate("api", 1, 1_000, 5)).await;
    for _ in 0..10 {
        submit(&b, job("q").rate_key("api")).await;
    }
    assert_eq!(
        claimed_now(&b, "q").await,
        5,
        "a full bucket allows its burst"
    );
    assert_eq!(claimed_now(&b, "q").await, 0);
    b.clock.advance(ms(1_000));
    assert_eq!(claimed_now(&b, "q").await, 1);
}

pub async fn rate_keys_have_own_buckets(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    put(&b, "per-customer", rate("customer:*", 1, 60_000, 1)).await;
    for key in ["customer:a", "customer:a", "customer:b", "customer:b"] {
        submit(&b, job("q").rate_key(key)).await;
    }
    let plain = submit(&b, job("q")).await;
    let claimed = b.engine.claim(&claim_req("q", 10)).await.expect("claim");
    assert_eq!(claimed.len(), 3, "one per customer and the unlimited one");
    assert!(ids(&claimed).contains(&plain));
    assert_eq!(claimed_now(&b, "q").await, 0);
}
