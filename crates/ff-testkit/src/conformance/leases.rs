//! Renew, release, complete, fencing and lease expiry.

use ff_core::execution::AttemptEnd;
use ff_core::{ErrorKind, Failure, JsonText, LeaseHandle, LeaseToken, State};

use super::support::*;
use crate::BackendFactory;

pub async fn renew_extends_lease(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    submit(&b, job("a").lease_ms(1_000)).await;
    let t0 = b.clock.now_ms();
    let claimed = claim_one(&b, "a").await;
    assert_eq!(claimed.lease_until, t0 + 1_000);
    b.clock.advance(ms(600));
    let renewed = b.engine.renew(&claimed.handle).await.expect("renew");
    assert_eq!(renewed.lease_until, t0 + 1_600);
    b.clock.advance(ms(600));
    assert_eq!(b.engine.expire_leases(100).await.expect("scan"), 0);
    b.engine
        .complete(&claimed.handle, JsonText::null())
        .await
        .expect("the renewed lease still holds");
}

pub async fn release_returns_to_ready_without_attempt(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a")).await;
    let first = claim_one(&b, "a").await;
    b.engine.release(&first.handle).await.expect("release");
    let exec = get(&b, id).await;
    assert_eq!(
        (exec.state, exec.attempt, exec.releases),
        (State::Ready, 1, 1)
    );
    assert!(exec.lease_until.is_none());
    let second = claim_one(&b, "a").await;
    assert_eq!((second.handle.attempt, second.handle.lease_epoch), (1, 2));
    expect_err(
        b.engine.complete(&first.handle, JsonText::null()).await,
        ErrorKind::LeaseLost,
    );
    b.engine
        .complete(&second.handle, JsonText::null())
        .await
        .expect("complete");
    let exec = get(&b, id).await;
    assert_eq!(exec.attempts.len(), 2);
    assert_eq!(exec.attempts[0].end, Some(AttemptEnd::Released));
}

pub async fn complete_records_result(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a")).await;
    let claimed = claim_one(&b, "a").await;
    b.clock.advance(ms(25));
    let result = r#"{"sent":  true, "ids":[3,1]}"#;
    let resp = b
        .engine
        .complete(&claimed.handle, JsonText::unchecked(result))
        .await
        .expect("complete");
    assert_eq!(resp.completed_at, b.clock.now_ms());
    let exec = get(&b, id).await;
    assert_eq!(exec.state, State::Completed);
    assert_eq!(exec.result.as_ref().map(JsonText::as_str), Some(result));
    assert_eq!(exec.finished_at, Some(b.clock.now_ms()));
    assert!(exec.lease_until.is_none());
    assert_eq!(exec.attempts.len(), 1);
    assert_eq!(exec.attempts[0].end, Some(AttemptEnd::Completed));
    assert_eq!(exec.attempts[0].ended_at, Some(b.clock.now_ms()));
    assert_eq!(exec.attempts[0].worker_id, "worker-1");
}

pub async fn complete_replay_returns_same_response(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a")).await;
    let claimed = claim_one(&b, "a").await;
    let first = b
        .engine
        .complete(&claimed.handle, JsonText::unchecked("1"))
        .await
        .expect("complete");
    b.clock.advance(ms(500));
    let replay = b
        .engine
        .complete(&claimed.handle, JsonText::unchecked("2"))
        .await
        .expect("replay");
    assert_eq!(replay, first);
    assert_eq!(
        get(&b, id)
            .await
            .result
            .map(JsonText::into_string)
            .as_deref(),
        Some("1")
    );
    let err = expect_err(
        b.engine
            .fail(&claimed.handle, Failure::retryable("late"))
            .await,
        ErrorKind::NotActive,
    );
    assert!(err.to_string().contains("completed"));
}

pub async fn stale_handle_gets_lease_lost(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    submit(&b, job("a")).await;
    let claimed = claim_one(&b, "a").await;
    let h = claimed.handle;
    let wrong_epoch = LeaseHandle {
        lease_epoch: h.lease_epoch + 1,
        ..h.clone()
    };
    let wrong_attempt = LeaseHandle {
        attempt: h.attempt + 1,
        ..h.clone()
    };
    let never = LeaseHandle {
        attempt: 0,
        lease_epoch: 0,
        ..h.clone()
    };
    let guessed = LeaseHandle {
        lease_token: LeaseToken::random(),
        ..h.clone()
    };
    for stale in [wrong_epoch, wrong_attempt, never, guessed] {
        expect_err(b.engine.renew(&stale).await, ErrorKind::LeaseLost);
        expect_err(b.engine.release(&stale).await, ErrorKind::LeaseLost);
        expect_err(
            b.engine.complete(&stale, JsonText::null()).await,
            ErrorKind::LeaseLost,
        );
        expect_err(
            b.engine.fail(&stale, Failure::retryable("x")).await,
            ErrorKind::LeaseLost,
        );
    }
    b.engine
        .complete(&h, JsonText::null())
        .await
        .expect("the real handle still works");
}

/// Knowing an execution's id, attempt and epoch is not enough: without the
/// lease token no worker operation applies, not even a replay, and nothing
/// changes.
pub async fn guessed_lease_token_changes_nothing(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a")).await;
    let h = claim_one(&b, "a").await.handle;
    let guessed = LeaseHandle {
        lease_token: LeaseToken::random(),
        ..h.clone()
    };
    expect_err(b.engine.renew(&guessed).await, ErrorKind::LeaseLost);
    expect_err(
        b.engine.complete(&guessed, JsonText::null()).await,
        ErrorKind::LeaseLost,
    );
    expect_err(
        b.engine.fail(&guessed, Failure::permanent("forged")).await,
        ErrorKind::LeaseLost,
    );
    expect_err(b.engine.release(&guessed).await, ErrorKind::LeaseLost);
    let exec = get(&b, id).await;
    assert_eq!(exec.state, State::Running);
    assert_eq!((exec.attempt, exec.lease_epoch), (h.attempt, h.lease_epoch));
    assert_eq!(exec.result, None);
    b.engine
        .complete(&h, JsonText::null())
        .await
        .expect("the real handle still works");
    expect_err(
        b.engine.complete(&guessed, JsonText::null()).await,
        ErrorKind::LeaseLost,
    );
}

/// A handle names its namespace; an execution of another namespace is not
/// found through it, and nothing changes.
pub async fn handle_of_another_namespace_is_not_found(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a")).await;
    let h = claim_one(&b, "a").await.handle;
    let elsewhere = LeaseHandle {
        namespace: "tenant-b".to_owned(),
        ..h.clone()
    };
    expect_err(b.engine.renew(&elsewhere).await, ErrorKind::NotFound);
    expect_err(
        b.engine.complete(&elsewhere, JsonText::null()).await,
        ErrorKind::NotFound,
    );
    expect_err(
        b.engine.fail(&elsewhere, Failure::permanent("x")).await,
        ErrorKind::NotFound,
    );
    expect_err(b.engine.release(&elsewhere).await, ErrorKind::NotFound);
    assert_eq!(get(&b, id).await.state, State::Running);
    b.engine
        .complete(&h, JsonText::null())
        .await
        .expect("the real handle still works");
}

pub async fn old_attempt_complete_after_retry_gets_lease_lost(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a").retry(exact_retry(3, 100))).await;
    let first = claim_one(&b, "a").await;
    b.engine
        .fail(&first.handle, Failure::retryable("flaky"))
        .await
        .expect("fail");
    b.clock.advance(ms(100));
    let second = claim_one(&b, "a").await;
    assert_eq!(second.handle.attempt, 2);
    expect_err(
        b.engine.complete(&first.handle, JsonText::null()).await,
        ErrorKind::LeaseLost,
    );
    b.engine
        .complete(&second.handle, JsonText::unchecked("2"))
        .await
        .expect("complete");
    expect_err(
        b.engine.complete(&first.handle, JsonText::null()).await,
        ErrorKind::LeaseLost,
    );
    assert_eq!(
        get(&b, id)
            .await
            .result
            .map(JsonText::into_string)
            .as_deref(),
        Some("2")
    );
}

pub async fn operation_after_lease_until_expires_itself(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a").lease_ms(1_000).retry(exact_retry(3, 100))).await;
    let claimed = claim_one(&b, "a").await;
    b.clock.advance(ms(1_000));
    expect_err(
        b.engine.complete(&claimed.handle, JsonText::null()).await,
        ErrorKind::LeaseLost,
    );
    let exec = get(&b, id).await;
    assert_eq!(
        exec.state,
        State::Scheduled,
        "the complete applied the expiry itself"
    );
    assert_eq!(exec.error.as_deref(), Some("lease_expired"));
    assert_eq!(exec.attempts[0].end, Some(AttemptEnd::LeaseExpired));
    assert_eq!(
        b.engine.expire_leases(100).await.expect("scan"),
        0,
        "nothing left to expire"
    );
    expect_err(b.engine.renew(&claimed.handle).await, ErrorKind::LeaseLost);
}

pub async fn lease_expiry_retries(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a").lease_ms(1_000).retry(exact_retry(3, 100))).await;
    let claimed = claim_one(&b, "a").await;
    b.clock.advance(ms(999));
    assert_eq!(b.engine.expire_leases(100).await.expect("scan"), 0);
    b.clock.advance(ms(1));
    assert_eq!(b.engine.expire_leases(100).await.expect("scan"), 1);
    let exec = get(&b, id).await;
    assert_eq!(exec.state, State::Scheduled);
    assert_eq!(exec.ready_at, b.clock.now_ms() + 100);
    assert_eq!(exec.error.as_deref(), Some("lease_expired"));
    assert_eq!(exec.attempts[0].end, Some(AttemptEnd::LeaseExpired));
    expect_err(
        b.engine.complete(&claimed.handle, JsonText::null()).await,
        ErrorKind::LeaseLost,
    );
    b.clock.advance(ms(100));
    let again = claim_one(&b, "a").await;
    assert_eq!((again.handle.attempt, again.handle.lease_epoch), (2, 2));
}

pub async fn attempt_timeout_retries(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(
        &b,
        job("a")
            .lease_ms(10_000)
            .attempt_timeout_ms(500)
            .retry(exact_retry(3, 100)),
    )
    .await;
    let claimed = claim_one(&b, "a").await;
    assert_eq!(claimed.attempt_deadline, Some(b.clock.now_ms() + 500));
    b.clock.advance(ms(300));
    b.engine
        .renew(&claimed.handle)
        .await
        .expect("renew inside the timeout");
    b.clock.advance(ms(200));
    assert_eq!(b.engine.expire_leases(100).await.expect("scan"), 1);
    let exec = get(&b, id).await;
    assert_eq!(exec.state, State::Scheduled);
    assert_eq!(exec.error.as_deref(), Some("attempt_timeout"));
    assert_eq!(exec.attempts[0].end, Some(AttemptEnd::AttemptTimeout));
    expect_err(b.engine.renew(&claimed.handle).await, ErrorKind::LeaseLost);
}
