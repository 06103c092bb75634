//! Suspension timeouts and deadlines: each policy, and a timeout already
//! due winning over a signal the scan has not beaten to it.

use ff_core::suspension::{SuspendRequest, TimeoutPolicy, SUSPENSION_TIMEOUT, TIMEOUT_SIGNAL};
use ff_core::{ErrorKind, ExecutionId, State};

use super::support::*;
use crate::conformance::support::*;
use crate::{BackendFactory, TestBackend};

async fn suspended_with_timeout(b: &TestBackend, policy: TimeoutPolicy) -> ExecutionId {
    let claimed = running(b, "a").await;
    let req = SuspendRequest::on("s1", ["a"]).timeout(1_000, policy);
    suspend_on(b, &claimed, req).await;
    b.clock.advance(ms(999));
    assert_eq!(b.engine.expire_suspensions(100).await.expect("scan"), 0);
    b.clock.advance(ms(1));
    assert_eq!(b.engine.expire_suspensions(100).await.expect("scan"), 1);
    assert_eq!(b.engine.expire_suspensions(100).await.expect("rescan"), 0);
    claimed.handle.execution_id
}

pub async fn timeout_fail(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = suspended_with_timeout(&b, TimeoutPolicy::Fail).await;
    let exec = get(&b, id).await;
    assert_eq!(exec.state, State::Failed);
    assert_eq!(exec.error.as_deref(), Some(SUSPENSION_TIMEOUT));
    let pending = b
        .engine
        .undispatched_completions(0, 10)
        .await
        .expect("outbox");
    assert!(pending.iter().any(|p| p.execution_id == id));
}

pub async fn timeout_cancel(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = suspended_with_timeout(&b, TimeoutPolicy::Cancel).await;
    assert_eq!(state(&b, id).await, State::Cancelled);
}

pub async fn timeout_resume_with_timeout_signal(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = suspended_with_timeout(&b, TimeoutPolicy::Resume).await;
    assert_eq!(state(&b, id).await, State::Ready);
    let claimed = claim_one(&b, "a").await;
    assert_eq!(claimed.handle.execution_id, id);
    assert_eq!(claimed.signals.len(), 1);
    assert_eq!(claimed.signals[0].name, TIMEOUT_SIGNAL);
    assert_eq!(claimed.signals[0].waitpoint, None);
}

pub async fn deadline_fails_suspended(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a").deadline(b.clock.now_ms() + 5_000)).await;
    let claimed = claim_one(&b, "a").await;
    suspend_on(&b, &claimed, SuspendRequest::on("s1", ["a"])).await;
    b.clock.advance(ms(5_000));
    assert_eq!(b.engine.expire_deadlines(100).await.expect("scan"), 1);
    let exec = get(&b, id).await;
    assert_eq!(exec.state, State::Failed);
    assert_eq!(exec.error.as_deref(), Some("deadline"));
}

pub async fn due_timeout_wins_over_late_signal(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let req = SuspendRequest::on("s1", ["a"]).timeout(1_000, TimeoutPolicy::Fail);
    let grants = suspend_on(&b, &claimed, req).await;
    b.clock.advance(ms(1_000));
    // No scan has run: the signal itself applies the timeout first.
    expect_err(
        b.engine
            .signal_by_token(&grants[0].token, &signal("late"))
            .await,
        ErrorKind::NotActive,
    );
    let exec = get(&b, id).await;
    assert_eq!(exec.state, State::Failed);
    assert_eq!(exec.error.as_deref(), Some(SUSPENSION_TIMEOUT));
    assert_eq!(signal_count(&b, id).await, 0);
    assert_eq!(b.engine.expire_suspensions(100).await.expect("scan"), 0);
}
