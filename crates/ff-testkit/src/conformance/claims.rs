//! Claim order, capabilities, batching, waiting and delayed runs.

use std::time::{Duration, Instant};

use ff_core::{ClaimRequest, State};

use super::support::*;
use crate::BackendFactory;

pub async fn priority_then_fifo_order(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let mut ids = Vec::new();
    for priority in [0, 5, 0, 5, -3] {
        ids.push(submit(&b, job("a").priority(priority)).await);
        b.clock.advance(ms(1));
    }
    let claimed = b.engine.claim(&claim_req("a", 5)).await.expect("claim");
    let order: Vec<_> = claimed.iter().map(|c| c.handle.execution_id).collect();
    assert_eq!(order, vec![ids[1], ids[3], ids[0], ids[2], ids[4]]);
}

pub async fn claim_respects_capabilities(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a").capabilities(["gpu", "linux"])).await;
    claim_none(&b, "a").await;
    let partial = ClaimRequest::new(["a"], "w").capabilities(["gpu"]);
    assert!(b.engine.claim(&partial).await.expect("claim").is_empty());
    let superset = ClaimRequest::new(["a"], "w").capabilities(["linux", "gpu", "avx"]);
    let claimed = b.engine.claim(&superset).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].handle.execution_id, id);
}

pub async fn capability_mismatch_does_not_block_lane(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let gpu = submit(&b, job("a").capabilities(["gpu"]).priority(10)).await;
    let plain = submit(&b, job("a")).await;
    let first = claim_one(&b, "a").await;
    assert_eq!(
        first.handle.execution_id, plain,
        "the gpu job is passed over"
    );
    let req = ClaimRequest::new(["a"], "w").capabilities(["gpu"]);
    let second = b.engine.claim(&req).await.expect("claim");
    assert_eq!(second[0].handle.execution_id, gpu);
}

pub async fn many_unclaimable_do_not_hide_work(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let later = b.clock.now_ms() + 60_000;
    // Ahead of the plain job in claim order: a long run of executions no
    // plain worker can take now, by capability or by time.
    let gpu = (0..150)
        .map(|_| job("a").capabilities(["gpu"]).priority(10))
        .collect();
    b.engine.submit_batch(gpu).await.expect("batch");
    for _ in 0..2 {
        let scheduled = (0..600)
            .map(|_| job("a").priority(5).run_at(later))
            .collect();
        b.engine.submit_batch(scheduled).await.expect("batch");
    }
    let plain = submit(&b, job("a")).await;
    let claimed = claim_one(&b, "a").await;
    assert_eq!(
        claimed.handle.execution_id, plain,
        "found behind 1,350 others"
    );
    claim_none(&b, "a").await;
    let req = ClaimRequest::new(["a"], "w")
        .capabilities(["gpu"])
        .max(1000);
    assert_eq!(b.engine.claim(&req).await.expect("claim").len(), 150);
}

pub async fn claim_up_to_n(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let reqs = (0..5).map(|_| job("a")).collect();
    b.engine.submit_batch(reqs).await.expect("batch");
    assert_eq!(
        b.engine
            .claim(&claim_req("a", 3))
            .await
            .expect("claim")
            .len(),
        3
    );
    let rest = b.engine.claim(&claim_req("a", 3)).await.expect("claim");
    assert_eq!(rest.len(), 2);
    assert!(rest
        .iter()
        .all(|c| c.handle.attempt == 1 && c.handle.lease_epoch == 1));
    claim_none(&b, "a").await;
}

pub async fn claim_spans_lanes_in_order(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let a1 = submit(&b, job("a")).await;
    b.clock.advance(ms(1));
    let b1 = submit(&b, job("b").priority(1)).await;
    b.clock.advance(ms(1));
    let b2 = submit(&b, job("b")).await;
    submit(&b, job("c").priority(100)).await;
    let req = ClaimRequest::new(["b", "a"], "w").max(10);
    let claimed = b.engine.claim(&req).await.expect("claim");
    let order: Vec<_> = claimed.iter().map(|c| c.handle.execution_id).collect();
    assert_eq!(
        order,
        vec![b1, a1, b2],
        "merged by priority, then ready time; lane c untouched"
    );
}

pub async fn claim_waits_then_wakes_on_submit(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let engine = b.engine.clone();
    let started = Instant::now();
    let waiter = tokio::spawn(async move {
        engine
            .claim_wait(&claim_req("a", 1), Duration::from_secs(20))
            .await
    });
    tokio::time::sleep(ms(150)).await;
    let id = submit(&b, job("a")).await;
    let claimed = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiting claim returns")
        .expect("join")
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].handle.execution_id, id);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken by the submit, not the timeout"
    );
}

pub async fn claim_wait_times_out_empty(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let started = Instant::now();
    let claimed = b
        .engine
        .claim_wait(&claim_req("a", 1), ms(300))
        .await
        .expect("claim");
    assert!(claimed.is_empty());
    assert!(started.elapsed() >= ms(250));
}

pub async fn run_at_delays_claim(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let at = b.clock.now_ms() + 5_000;
    let id = submit(&b, job("a").run_at(at)).await;
    let exec = get(&b, id).await;
    assert_eq!((exec.state, exec.ready_at), (State::Scheduled, at));
    claim_none(&b, "a").await;
    b.clock.advance(ms(4_999));
    claim_none(&b, "a").await;
    b.clock.advance(ms(1));
    assert_eq!(claim_one(&b, "a").await.handle.execution_id, id);

    // A run_at in the past is ready at once.
    let past = submit(&b, job("b").run_at(b.clock.now_ms() - 10)).await;
    assert_eq!(get(&b, past).await.state, State::Ready);
}

pub async fn namespaces_are_isolated(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let theirs = submit(&b, job("a").namespace("tenant-b")).await;
    claim_none(&b, "a").await;
    let req = ClaimRequest::new(["a"], "w").namespace("tenant-b");
    let claimed = b.engine.claim(&req).await.expect("claim");
    assert_eq!(claimed[0].handle.execution_id, theirs);
    assert_eq!(claimed[0].namespace, "tenant-b");
}
