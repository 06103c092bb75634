//! Failures, backoff, retries, deadlines and scheduled promotion.

use ff_core::execution::AttemptEnd;
use ff_core::{ErrorKind, Failure, JsonText, RetryPolicy, State};

use super::support::*;
use crate::BackendFactory;

pub async fn retry_goes_to_back_of_lane(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let first = submit(&b, job("a").retry(exact_retry(3, 1_000))).await;
    let second = submit(&b, job("a")).await;
    let claimed = claim_one(&b, "a").await;
    assert_eq!(claimed.handle.execution_id, first);
    b.engine
        .fail(&claimed.handle, Failure::retryable("flaky"))
        .await
        .expect("fail");
    b.clock.advance(ms(1_001));
    let third = submit(&b, job("a")).await;
    let order: Vec<_> = b
        .engine
        .claim(&claim_req("a", 3))
        .await
        .expect("claim")
        .iter()
        .map(|c| c.handle.execution_id)
        .collect();
    assert_eq!(
        order,
        vec![second, first, third],
        "the retry queues by its ready time"
    );
}

pub async fn fail_retryable_schedules_backoff(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a").retry(exact_retry(3, 1_000))).await;
    let claimed = claim_one(&b, "a").await;
    let now = b.clock.now_ms();
    let resp = b
        .engine
        .fail(&claimed.handle, Failure::retryable("smtp timeout"))
        .await
        .expect("fail");
    assert_eq!(
        (resp.state, resp.retry_at),
        (State::Scheduled, Some(now + 1_000))
    );
    let exec = get(&b, id).await;
    assert_eq!((exec.state, exec.ready_at), (State::Scheduled, now + 1_000));
    assert_eq!(exec.error.as_deref(), Some("smtp timeout"));
    assert_eq!(
        exec.attempts[0].end,
        Some(AttemptEnd::Failed {
            retry_at: Some(now + 1_000)
        })
    );
    assert_eq!(exec.attempts[0].error.as_deref(), Some("smtp timeout"));

    b.clock.advance(ms(5));
    let replay = b
        .engine
        .fail(&claimed.handle, Failure::permanent("changed my mind"))
        .await
        .expect("replay");
    assert_eq!(replay, resp, "a replayed fail answers as the first");

    b.clock.advance(ms(994));
    claim_none(&b, "a").await;
    b.clock.advance(ms(1));
    assert_eq!(claim_one(&b, "a").await.handle.attempt, 2);
}

pub async fn backoff_grows_with_cap_and_jitter(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let policy = RetryPolicy {
        max_attempts: 6,
        initial_backoff_ms: 100,
        max_backoff_ms: 400,
        jitter_percent: 20,
    };
    let id = submit(&b, job("a").retry(policy)).await;
    for attempt in 1..=5u32 {
        let claimed = claim_one(&b, "a").await;
        assert_eq!(claimed.handle.attempt, attempt);
        let now = b.clock.now_ms();
        let resp = b
            .engine
            .fail(&claimed.handle, Failure::retryable("x"))
            .await
            .expect("fail");
        let delay = resp.retry_at.expect("a retry is scheduled") - now;
        let base = (100i64 << (attempt - 1)).min(400);
        assert!(
            (base * 80 / 100..=base).contains(&delay),
            "attempt {attempt}: delay {delay} outside [{}, {base}]",
            base * 80 / 100
        );
        assert_eq!(
            delay as u64,
            policy.backoff_ms(id, attempt),
            "jitter is the core's hash"
        );
        b.clock.advance(ms(delay as u64));
    }
    let last = claim_one(&b, "a").await;
    let resp = b
        .engine
        .fail(&last.handle, Failure::retryable("x"))
        .await
        .expect("fail");
    assert_eq!((resp.state, resp.retry_at), (State::Failed, None));
}

pub async fn fail_permanent_is_terminal(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a").retry(exact_retry(5, 100))).await;
    let claimed = claim_one(&b, "a").await;
    let resp = b
        .engine
        .fail(&claimed.handle, Failure::permanent("bad address"))
        .await
        .expect("fail");
    assert_eq!((resp.state, resp.retry_at), (State::Failed, None));
    let exec = get(&b, id).await;
    assert_eq!(exec.state, State::Failed);
    assert_eq!(exec.error.as_deref(), Some("bad address"));
    assert_eq!(exec.finished_at, Some(b.clock.now_ms()));
    b.clock.advance(ms(10_000));
    claim_none(&b, "a").await;
}

pub async fn retries_exhausted_is_failed(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a").retry(exact_retry(2, 100))).await;
    let first = claim_one(&b, "a").await;
    let resp = b
        .engine
        .fail(&first.handle, Failure::retryable("1"))
        .await
        .expect("fail");
    assert_eq!(resp.state, State::Scheduled);
    b.clock.advance(ms(100));
    let second = claim_one(&b, "a").await;
    let resp = b
        .engine
        .fail(&second.handle, Failure::retryable("2"))
        .await
        .expect("fail");
    assert_eq!((resp.state, resp.retry_at), (State::Failed, None));
    let exec = get(&b, id).await;
    assert_eq!((exec.state, exec.attempt), (State::Failed, 2));
    assert_eq!(exec.error.as_deref(), Some("2"));
}

pub async fn deadline_fails_waiting_execution(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a").deadline(b.clock.now_ms() + 1_000)).await;
    b.clock.advance(ms(1_000));
    claim_none(&b, "a").await;
    assert_eq!(b.engine.expire_deadlines(100).await.expect("scan"), 1);
    let exec = get(&b, id).await;
    assert_eq!(exec.state, State::Failed);
    assert_eq!(exec.error.as_deref(), Some("deadline"));
    assert_eq!(b.engine.expire_deadlines(100).await.expect("scan"), 0);
}

pub async fn deadline_fails_running_execution(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(
        &b,
        job("a").lease_ms(60_000).deadline(b.clock.now_ms() + 1_000),
    )
    .await;
    let claimed = claim_one(&b, "a").await;
    b.clock.advance(ms(1_000));
    assert_eq!(b.engine.expire_deadlines(100).await.expect("scan"), 1);
    let err = expect_err(
        b.engine.complete(&claimed.handle, JsonText::null()).await,
        ErrorKind::NotActive,
    );
    assert!(matches!(
        err,
        ff_core::EngineError::NotActive {
            outcome: ff_core::Outcome::Failed
        }
    ));
    let exec = get(&b, id).await;
    assert_eq!(exec.attempts[0].end, Some(AttemptEnd::Deadline));
}

pub async fn retry_past_deadline_fails_at_once(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(
        &b,
        job("a")
            .retry(exact_retry(5, 1_000))
            .deadline(b.clock.now_ms() + 500),
    )
    .await;
    let claimed = claim_one(&b, "a").await;
    let resp = b
        .engine
        .fail(&claimed.handle, Failure::retryable("x"))
        .await
        .expect("fail");
    assert_eq!((resp.state, resp.retry_at), (State::Failed, None));
    assert_eq!(get(&b, id).await.state, State::Failed);
}

/// A retryable failure whose retry would land past the deadline fails the
/// execution at once with the deadline as its error; the attempt keeps the
/// worker's error (or the lease expiry's). A failure that could not retry
/// anyway keeps the worker's error.
pub async fn retry_past_deadline_records_the_deadline(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let deadline = b.clock.now_ms() + 5_000;
    let cut = submit(
        &b,
        job("a").retry(exact_retry(5, 10_000)).deadline(deadline),
    )
    .await;
    let claimed = claim_one(&b, "a").await;
    b.engine
        .fail(&claimed.handle, Failure::retryable("smtp busy"))
        .await
        .expect("fail");
    let exec = get(&b, cut).await;
    assert_eq!(exec.state, State::Failed);
    assert_eq!(exec.error.as_deref(), Some("deadline"));
    assert_eq!(exec.attempts[0].error.as_deref(), Some("smtp busy"));
    assert_eq!(
        exec.attempts[0].end,
        Some(AttemptEnd::Failed { retry_at: None })
    );

    let expired = submit(
        &b,
        job("b")
            .lease_ms(1_000)
            .retry(exact_retry(5, 10_000))
            .deadline(deadline),
    )
    .await;
    claim_one(&b, "b").await;
    b.clock.advance(ms(1_000));
    assert_eq!(b.engine.expire_leases(100).await.expect("scan"), 1);
    let exec = get(&b, expired).await;
    assert_eq!(exec.state, State::Failed);
    assert_eq!(exec.error.as_deref(), Some("deadline"));
    assert_eq!(exec.attempts[0].error.as_deref(), Some("lease_expired"));

    let permanent = submit(
        &b,
        job("c")
            .retry(exact_retry(5, 10))
            .deadline(deadline + 60_000),
    )
    .await;
    let claimed = claim_one(&b, "c").await;
    b.engine
        .fail(&claimed.handle, Failure::permanent("bad address"))
        .await
        .expect("fail");
    assert_eq!(
        get(&b, permanent).await.error.as_deref(),
        Some("bad address")
    );
}

pub async fn promote_scheduled_makes_due_ready(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let now = b.clock.now_ms();
    let soon = submit(&b, job("a").run_at(now + 100)).await;
    let later = submit(&b, job("a").run_at(now + 10_000)).await;
    assert_eq!(b.engine.promote_scheduled(100).await.expect("scan"), 0);
    b.clock.advance(ms(100));
    assert_eq!(b.engine.promote_scheduled(100).await.expect("scan"), 1);
    assert_eq!(get(&b, soon).await.state, State::Ready);
    assert_eq!(get(&b, soon).await.ready_at, now + 100);
    assert_eq!(get(&b, later).await.state, State::Scheduled);
}
