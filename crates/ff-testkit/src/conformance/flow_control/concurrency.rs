//! Concurrency keys: at most `limit` running per key, decided inside the
//! claim, released by every transition out of running.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ff_core::flow::FlowSpec;
use ff_core::suspension::SuspendRequest;
use ff_core::{ClaimRequest, Failure, JsonText, State};

use super::super::flow_support::{create, edge, node};
use super::super::support::*;
use super::support::*;
use crate::BackendFactory;

pub async fn concurrency_limit_holds_under_parallel_claims(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    put(&b, "partner", concurrency("partner", 3)).await;
    for _ in 0..12 {
        submit(&b, job("q").concurrency_key("partner")).await;
    }
    let mut tasks = Vec::new();
    for w in 0..8 {
        let engine = b.engine.clone();
        tasks.push(tokio::spawn(async move {
            let req = ClaimRequest::new(["q"], format!("w{w}")).max(2);
            engine.claim(&req).await.expect("claim").len()
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("claimer");
    }
    assert_eq!(total, 3, "exactly the limit runs");
    claim_none(&b, "q").await;
}

pub async fn slot_released_on_complete_fail_cancel_expiry_suspend(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    put(&b, "one", concurrency("k", 1)).await;
    for _ in 0..6 {
        submit(&b, job("q").concurrency_key("k").lease_ms(1_000)).await;
    }
    let first = claim_one(&b, "q").await;
    claim_none(&b, "q").await;
    b.engine
        .complete(&first.handle, JsonText::null())
        .await
        .expect("complete");

    let second = claim_one(&b, "q").await;
    claim_none(&b, "q").await;
    b.engine
        .fail(&second.handle, Failure::permanent("no"))
        .await
        .expect("fail");

    let third = claim_one(&b, "q").await;
    claim_none(&b, "q").await;
    b.engine
        .cancel(third.handle.execution_id)
        .await
        .expect("cancel");

    let fourth = claim_one(&b, "q").await;
    claim_none(&b, "q").await;
    // The lease lapses: its slot is free before any scan runs.
    b.clock.advance(ms(1_001));

    let fifth = claim_one(&b, "q").await;
    assert_ne!(fifth.handle.execution_id, fourth.handle.execution_id);
    claim_none(&b, "q").await;
    let req = SuspendRequest::on("s1", ["approve"]);
    b.engine
        .suspend(&fifth.handle, &req)
        .await
        .expect("suspend");
    assert_eq!(
        get(&b, fifth.handle.execution_id).await.state,
        State::Suspended
    );
    let sixth = claim_one(&b, "q").await;
    assert_ne!(sixth.handle.execution_id, fifth.handle.execution_id);
}

pub async fn limited_execution_does_not_block_lane(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    put(&b, "one", concurrency("k", 1)).await;
    let held = submit(&b, job("q").concurrency_key("k").priority(9)).await;
    let ahead = submit(&b, job("q").concurrency_key("k").priority(9)).await;
    let plain = submit(&b, job("q")).await;
    let other = submit(&b, job("q").concurrency_key("other")).await;
    let first = claim_one(&b, "q").await;
    assert_eq!(first.handle.execution_id, held);
    let claimed = b.engine.claim(&claim_req("q", 10)).await.expect("claim");
    assert_eq!(ids(&claimed), [plain, other], "the held one is passed over");
    assert_eq!(get(&b, ahead).await.state, State::Ready);
}

pub async fn freed_slot_wakes_waiting_claim(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    put(&b, "one", concurrency("k", 1)).await;
    submit(&b, job("q").concurrency_key("k")).await;
    let waiting = submit(&b, job("q").concurrency_key("k")).await;
    let first = claim_one(&b, "q").await;
    let engine = b.engine.clone();
    let claimer = tokio::spawn(async move {
        // Shorter than any backend's recheck: only a push finds the work.
        let started = Instant::now();
        let got = engine
            .claim_wait(&claim_req("q", 1), Duration::from_millis(900))
            .await
            .expect("claim wait");
        (got, started.elapsed())
    });
    tokio::time::sleep(ms(150)).await;
    b.engine
        .complete(&first.handle, JsonText::null())
        .await
        .expect("complete");
    let (got, _) = claimer.await.expect("claimer");
    assert_eq!(ids(&got), [waiting], "the freed slot woke the claim");
}

pub async fn prefix_pattern_limits_each_key(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    put(&b, "tenants", concurrency("tenant:*", 1)).await;
    put(&b, "big", concurrency("tenant:big", 2)).await;
    for key in [
        "tenant:a",
        "tenant:a",
        "tenant:b",
        "tenant:big",
        "tenant:big",
        "tenant:big",
    ] {
        submit(&b, job("q").concurrency_key(key)).await;
    }
    let claimed = b.engine.claim(&claim_req("q", 10)).await.expect("claim");
    let mut keys: Vec<String> = Vec::new();
    for c in &claimed {
        keys.extend(get(&b, c.handle.execution_id).await.concurrency_key);
    }
    keys.sort();
    assert_eq!(keys, ["tenant:a", "tenant:b", "tenant:big", "tenant:big"]);
}

pub async fn flow_node_keys_are_its_own(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    put(&b, "one", concurrency("k", 1)).await;
    let mut limited = node("a");
    limited.execution = limited.execution.concurrency_key("k");
    let mut second = node("b");
    second.execution = second.execution.concurrency_key("k");
    let flow = create(
        &b,
        FlowSpec::new(vec![limited, second, node("c")], vec![edge("a", "c")]),
    )
    .await;
    let exec = get(&b, flow.nodes["c"]).await;
    assert_eq!(exec.concurrency_key, None, "a node inherits no key");
    let a = b
        .engine
        .claim(&ClaimRequest::new(["a"], "w"))
        .await
        .expect("a");
    assert_eq!(a.len(), 1);
    let held = b
        .engine
        .claim(&ClaimRequest::new(["b"], "w"))
        .await
        .expect("b");
    assert!(held.is_empty(), "b shares a's key and its one slot");
    let standalone = submit(&b, job("q").concurrency_key("k")).await;
    claim_none(&b, "q").await;
    b.engine
        .complete(&a[0].handle, JsonText::null())
        .await
        .expect("complete");
    let claimed = b.engine.claim(&claim_req("q", 1)).await.expect("claim");
    assert_eq!(ids(&claimed), [standalone]);
}

/// Sixteen workers and 1,000 executions, 900 of them slow ones under a
/// limit of 3 on one key and 100 unlimited ones in the same lane: the
/// stored attempt intervals never overlap more than 3 deep, and the
/// unlimited work is not held back.
pub async fn concurrency_limit_under_many_workers(f: &dyn BackendFactory) {
    const LIMITED: usize = 900;
    const PLAIN: usize = 100;
    let b = f.open_default().await;
    put(&b, "three", concurrency("api", 3)).await;
    let mut reqs: Vec<_> = (0..LIMITED)
        .map(|_| job("q").concurrency_key("api"))
        .collect();
    reqs.extend((0..PLAIN).map(|_| job("q")));
    b.engine.submit_batch(reqs).await.expect("submit");
    let limited_done = Arc::new(AtomicU32::new(0));
    let in_flight = Arc::new(AtomicU32::new(0));
    let most_in_flight = Arc::new(AtomicU32::new(0));
    let plain_done_early = Arc::new(AtomicU32::new(0));
    let mut workers = Vec::new();
    for w in 0..16 {
        let engine = b.engine.clone();
        let clock = b.clock.clone();
        let (limited_done, plain_done_early) = (limited_done.clone(), plain_done_early.clone());
        let (in_flight, most_in_flight) = (in_flight.clone(), most_in_flight.clone());
        workers.push(tokio::spawn(async move {
            let req = ClaimRequest::new(["q"], format!("w{w}"));
            let deadline = Instant::now() + Duration::from_secs(120);
            while (limited_done.load(Ordering::SeqCst) as usize) < LIMITED {
                assert!(Instant::now() < deadline, "the workers stalled");
                clock.advance(ms(1));
                let claimed = engine.claim(&req).await.expect("claim");
                let Some(c) = claimed.into_iter().next() else {
                    tokio::time::sleep(ms(2)).await;
                    continue;
                };
                let exec = engine
                    .get_execution(c.handle.execution_id)
                    .await
                    .expect("get");
                if exec.concurrency_key.is_some() {
                    // Counted from the claim's answer to before the complete:
                    // a subset of what the store holds as running.
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most_in_flight.fetch_max(now, Ordering::SeqCst);
                    // The limited work is slow, so its slots stay taken.
                    tokio::time::sleep(ms(3)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                }
                clock.advance(ms(1));
                engine
                    .complete(&c.handle, JsonText::null())
                    .await
                    .expect("complete");
                if exec.concurrency_key.is_some() {
                    limited_done.fetch_add(1, Ordering::SeqCst);
                } else if limited_done.load(Ordering::SeqCst) < (LIMITED / 2) as u32 {
                    plain_done_early.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    let page = b
        .engine
        .list_executions(&ff_core::ListFilter {
            limit: 1_000,
            ..Default::default()
        })
        .await
        .expect("list");
    let mut events = Vec::new();
    for exec in page.items.iter().filter(|e| e.concurrency_key.is_some()) {
        assert_eq!(exec.state, State::Completed);
        for a in &exec.attempts {
            events.push((a.started_at, 1));
            events.push((a.ended_at.expect("ended"), -1));
        }
    }
    assert_eq!(events.len(), 2 * LIMITED);
    // Half-open intervals: an end at t comes before a start at t.
    events.sort();
    let (mut depth, mut deepest) = (0, 0);
    for (_, step) in events {
        depth += step;
        deepest = deepest.max(depth);
    }
    assert!(deepest <= 3, "{deepest} ran at once under a limit of 3");
    let most = most_in_flight.load(Ordering::SeqCst);
    assert!(most <= 3, "{most} workers held the key at once");
    assert_eq!(most, 3, "the limit was reached");
    assert!(
        plain_done_early.load(Ordering::SeqCst) as usize >= PLAIN * 9 / 10,
        "unlimited work waited behind the limited: {} of {PLAIN} done early",
        plain_done_early.load(Ordering::SeqCst)
    );
}
