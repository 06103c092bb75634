//! Suspend, waitpoints and signals: conditions, buffering, replays,
//! idempotency, concurrency, cancel and flows, limits.

use std::time::Duration;

use ff_core::execution::AttemptEnd;
use ff_core::flow::FlowSpec;
use ff_core::suspension::{
    ResumeCondition, SignalRequest, SuspendRequest, SuspendResponse, TimeoutPolicy,
    WaitpointRequest,
};
use ff_core::{EngineError, ErrorKind, JsonText, Outcome, State};

use super::support::*;
use crate::conformance::flow_support::{
    assert_states, claim_node, create, edge, node, pump, run_node,
};
use crate::conformance::support::*;
use crate::BackendFactory;

pub async fn suspend_releases_lease_and_keeps_attempt(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let grants = suspend_on(&b, &claimed, SuspendRequest::on("s1", ["approve"])).await;
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].key, "approve");
    let exec = get(&b, id).await;
    assert_eq!((exec.state, exec.attempt), (State::Suspended, 1));
    assert!(exec.lease_until.is_none() && exec.worker_id.is_none());
    assert_eq!(exec.attempts[0].end, Some(AttemptEnd::Suspended));
    claim_none(&b, "a").await;
    expect_err(b.engine.renew(&claimed.handle).await, ErrorKind::LeaseLost);
    // A suspended execution's lease never expires.
    b.clock.advance(ms(60_000));
    assert_eq!(b.engine.expire_leases(100).await.expect("scan"), 0);
    assert_eq!(state(&b, id).await, State::Suspended);
}

pub async fn signal_resumes_any(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let grants = suspend_on(&b, &claimed, SuspendRequest::on("s1", ["yes", "no"])).await;
    let resp = send(&b, &grants[1], "rejected").await;
    assert!(resp.resumed && !resp.duplicate);
    assert_eq!(state(&b, id).await, State::Ready);
    let again = claim_one(&b, "a").await;
    assert_eq!(again.signals.len(), 1);
    assert_eq!(again.signals[0].waitpoint.as_deref(), Some("no"));
    expect_err(
        b.engine
            .signal_by_token(&grants[0].token, &signal("late"))
            .await,
        ErrorKind::Conflict,
    );
}

pub async fn all_needs_every_waitpoint(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let req = SuspendRequest::on("s1", ["a", "b", "c"]).condition(ResumeCondition::All);
    let grants = suspend_on(&b, &claimed, req).await;
    assert!(!send(&b, &grants[0], "one").await.resumed);
    assert!(!send(&b, &grants[0], "one-again").await.resumed);
    assert!(!send(&b, &grants[2], "three").await.resumed);
    assert_eq!(state(&b, id).await, State::Suspended);
    assert!(send(&b, &grants[1], "two").await.resumed);
    let again = claim_one(&b, "a").await;
    assert_eq!(again.signals.len(), 4);
}

pub async fn count_n_distinct(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let two_distinct = ResumeCondition::Count {
        n: 2,
        distinct: true,
    };
    let req = SuspendRequest::on("s1", ["a", "b", "c"]).condition(two_distinct);
    let grants = suspend_on(&b, &claimed, req).await;
    assert!(!send(&b, &grants[0], "x").await.resumed);
    assert!(!send(&b, &grants[0], "y").await.resumed);
    assert_eq!(state(&b, id).await, State::Suspended);
    assert!(send(&b, &grants[2], "z").await.resumed);
    assert_eq!(state(&b, id).await, State::Ready);

    // Without `distinct`, two signals to one waitpoint are enough.
    let claimed = running(&b, "b").await;
    let plain = ResumeCondition::Count {
        n: 2,
        distinct: false,
    };
    let grants = suspend_on(
        &b,
        &claimed,
        SuspendRequest::on("s1", ["a", "b"]).condition(plain),
    )
    .await;
    assert!(!send(&b, &grants[0], "x").await.resumed);
    assert!(send(&b, &grants[0], "y").await.resumed);
}

pub async fn signal_before_suspend_is_buffered(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let a = waitpoint(&b, &claimed, "a").await;
    assert!(!send(&b, &a, "early").await.resumed);
    assert_eq!(state(&b, id).await, State::Running);
    // The buffered signal counts toward `all` once it suspends.
    let req = SuspendRequest::on("s1", ["a", "b"]).condition(ResumeCondition::All);
    let grants = suspend_on(&b, &claimed, req).await;
    assert_eq!(
        grants[0].token, a.token,
        "the same waitpoint, the same token"
    );
    assert!(send(&b, &grants[1], "late").await.resumed);
    let again = claim_one(&b, "a").await;
    let names: Vec<&str> = again.signals.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["early", "late"]);
}

pub async fn already_satisfied_keeps_lease(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let a = waitpoint(&b, &claimed, "a").await;
    send(&b, &a, "approved").await;
    let resp = b
        .engine
        .suspend(&claimed.handle, &SuspendRequest::on("s1", ["a"]))
        .await
        .expect("suspend");
    let SuspendResponse::AlreadySatisfied { signals } = resp else {
        panic!("expected AlreadySatisfied, got {resp:?}");
    };
    assert_eq!(signals.len(), 1);
    assert_eq!(signals[0].name, "approved");
    assert_eq!(state(&b, id).await, State::Running);
    b.engine
        .complete(&claimed.handle, JsonText::null())
        .await
        .expect("the lease was kept");
}

pub async fn suspend_replay_returns_first_answer(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let req = SuspendRequest::on("s1", ["a"]).timeout(5_000, TimeoutPolicy::Fail);
    let first = b
        .engine
        .suspend(&claimed.handle, &req)
        .await
        .expect("first");
    b.clock.advance(ms(10));
    let replay = b
        .engine
        .suspend(&claimed.handle, &req)
        .await
        .expect("replay");
    assert_eq!(first, replay);
    // Also after it resumed: the replay answers as the first call did.
    let SuspendResponse::Suspended { waitpoints, .. } = &first else {
        panic!("expected Suspended");
    };
    send(&b, &waitpoints[0], "go").await;
    let late = b
        .engine
        .suspend(&claimed.handle, &req)
        .await
        .expect("late replay");
    assert_eq!(first, late);
    // Another key with the released handle is refused.
    expect_err(
        b.engine
            .suspend(&claimed.handle, &SuspendRequest::on("s2", ["b"]))
            .await,
        ErrorKind::LeaseLost,
    );
}

pub async fn duplicate_signal_idempotency_key(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let a = waitpoint(&b, &claimed, "a").await;
    let req = signal("approved").idempotency_key("delivery-1");
    let first = b
        .engine
        .signal_by_token(&a.token, &req)
        .await
        .expect("first");
    let repeat = b
        .engine
        .signal_by_token(&a.token, &req)
        .await
        .expect("repeat");
    assert!(!first.duplicate && repeat.duplicate);
    assert_eq!(first.signal_id, repeat.signal_id);
    // The operator path sees the same key.
    let by_id = b
        .engine
        .signal("default", id, "a", &req)
        .await
        .expect("operator repeat");
    assert!(by_id.duplicate);
    assert_eq!(signal_count(&b, id).await, 1);
    // After the token expired, a sender's retry still gets its answer;
    // a new signal is refused.
    b.clock
        .advance(ms(ff_core::suspension::DEFAULT_WAITPOINT_TTL_MS));
    let late = b
        .engine
        .signal_by_token(&a.token, &req)
        .await
        .expect("a repeat after expiry");
    assert!(late.duplicate && late.signal_id == first.signal_id);
    expect_invalid(
        b.engine.signal_by_token(&a.token, &signal("new")).await,
        "token",
    );
}

pub async fn concurrent_signals_resume_once(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    for round in 0..3 {
        let lane = format!("lane-{round}");
        let claimed = running(&b, &lane).await;
        let id = claimed.handle.execution_id;
        let req = SuspendRequest::on("s1", ["a", "b"]).condition(ResumeCondition::All);
        let grants = suspend_on(&b, &claimed, req).await;
        let (sx, sy) = (signal("x"), signal("y"));
        let (x, y) = tokio::join!(
            b.engine.signal_by_token(&grants[0].token, &sx),
            b.engine.signal_by_token(&grants[1].token, &sy),
        );
        let resumed = [x.expect("x"), y.expect("y")]
            .iter()
            .filter(|r| r.resumed)
            .count();
        assert_eq!(resumed, 1, "exactly one of the two resumes it");
        // Two signals racing to complete one condition: one lands.
        let claimed = claim_one(&b, &lane).await;
        assert_eq!(claimed.handle.execution_id, id);
        let req = SuspendRequest::on("s2", ["c"]);
        let grants = suspend_on(&b, &claimed, req).await;
        let (x, y) = tokio::join!(
            b.engine.signal_by_token(&grants[0].token, &sx),
            b.engine.signal_by_token(&grants[0].token, &sy),
        );
        let outcomes = [x, y];
        let landed = outcomes
            .iter()
            .filter(|r| matches!(r, Ok(r) if r.resumed))
            .count();
        assert_eq!(landed, 1);
        for refused in outcomes.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(refused.kind(), ErrorKind::Conflict);
        }
        let exec = get(&b, id).await;
        assert_eq!(exec.state, State::Ready);
        assert_eq!(exec.wait.map(|w| w.signals.len()), Some(3));
    }
}

pub async fn cancel_suspended(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let grants = suspend_on(&b, &claimed, SuspendRequest::on("s1", ["a"])).await;
    let resp = b.engine.cancel(id).await.expect("cancel");
    assert!(resp.changed);
    assert_eq!(state(&b, id).await, State::Cancelled);
    let err = expect_err(
        b.engine
            .signal_by_token(&grants[0].token, &signal("late"))
            .await,
        ErrorKind::NotActive,
    );
    assert!(matches!(
        err,
        EngineError::NotActive {
            outcome: Outcome::Cancelled
        }
    ));
}

pub async fn cancel_flow_with_suspended_member(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let flow = create(
        &b,
        FlowSpec::new(vec![node("a"), node("b")], vec![edge("a", "b")]),
    )
    .await;
    let claimed = claim_node(&b, "a").await;
    let grants = suspend_on(&b, &claimed, SuspendRequest::on("s1", ["ok"])).await;
    b.engine
        .cancel_flow(flow.flow_id)
        .await
        .expect("cancel flow");
    assert_states(
        &b,
        &flow,
        &[("a", State::Cancelled), ("b", State::Cancelled)],
    )
    .await;
    expect_err(
        b.engine
            .signal_by_token(&grants[0].token, &signal("late"))
            .await,
        ErrorKind::NotActive,
    );
}

pub async fn suspended_member_blocks_children_until_resumed(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let flow = create(
        &b,
        FlowSpec::new(vec![node("a"), node("b")], vec![edge("a", "b")]),
    )
    .await;
    let claimed = claim_node(&b, "a").await;
    let grants = suspend_on(&b, &claimed, SuspendRequest::on("s1", ["ok"])).await;
    pump(&b).await;
    assert_states(&b, &flow, &[("a", State::Suspended), ("b", State::Blocked)]).await;
    send(&b, &grants[0], "approved").await;
    pump(&b).await;
    assert_states(&b, &flow, &[("a", State::Ready), ("b", State::Blocked)]).await;
    run_node(&b, "a", r#"{"approved": true}"#).await;
    pump(&b).await;
    assert_states(&b, &flow, &[("a", State::Completed), ("b", State::Ready)]).await;
}

pub async fn resumed_attempt_receives_signals(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let grants = suspend_on(&b, &claimed, SuspendRequest::on("s1", ["approve"])).await;
    b.clock.advance(ms(250));
    let payload = r#"{"by": "ada",  "note": "ok"}"#;
    let req = SignalRequest::new("approved", JsonText::unchecked(payload)).source("slack");
    let sent = b
        .engine
        .signal_by_token(&grants[0].token, &req)
        .await
        .expect("signal");
    let resumed = claim_one(&b, "a").await;
    assert_eq!(resumed.handle.execution_id, id);
    assert_eq!(
        (resumed.handle.attempt, resumed.handle.lease_epoch),
        (1, 2),
        "the same attempt under a new lease epoch"
    );
    let got = &resumed.signals[0];
    assert_eq!(got.id, sent.signal_id);
    assert_eq!(got.name, "approved");
    assert_eq!(got.payload.as_str(), payload, "the payload verbatim");
    assert_eq!(got.source.as_deref(), Some("slack"));
    assert_eq!(got.received_at, b.clock.now_ms());
    b.engine
        .complete(&resumed.handle, JsonText::null())
        .await
        .expect("complete");
    let exec = get(&b, id).await;
    assert_eq!(exec.attempts.len(), 2);
    assert!(exec.attempts.iter().all(|a| a.attempt == 1));
}

pub async fn signal_to_terminal_is_not_active(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let a = waitpoint(&b, &claimed, "a").await;
    b.engine
        .complete(&claimed.handle, JsonText::null())
        .await
        .expect("complete");
    let err = expect_err(
        b.engine.signal_by_token(&a.token, &signal("late")).await,
        ErrorKind::NotActive,
    );
    assert!(matches!(
        err,
        EngineError::NotActive {
            outcome: Outcome::Completed
        }
    ));
    expect_err(
        b.engine.signal("default", id, "a", &signal("late")).await,
        ErrorKind::NotActive,
    );
    assert_eq!(signal_count(&b, id).await, 0);
}

pub async fn signals_cap_enforced(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let a = waitpoint(&b, &claimed, "a").await;
    let cap = ff_core::Limits::default().max_signals;
    for i in 0..cap {
        send(&b, &a, &format!("s{i}")).await;
    }
    expect_err(
        b.engine.signal_by_token(&a.token, &signal("over")).await,
        ErrorKind::Conflict,
    );
    assert_eq!(signal_count(&b, id).await, cap);
    // The payload limit is checked before anything is read.
    let big = format!("\"{}\"", "x".repeat(64 * 1024));
    expect_invalid(
        b.engine
            .signal_by_token(
                &a.token,
                &SignalRequest::new("big", JsonText::unchecked(big)),
            )
            .await,
        "payload",
    );
}

pub async fn stale_handle_cannot_suspend(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    submit(&b, job("a").lease_ms(1_000).retry(exact_retry(3, 100))).await;
    let stale = claim_one(&b, "a").await;
    b.clock.advance(ms(1_000));
    b.engine.expire_leases(10).await.expect("expire");
    b.clock.advance(ms(100));
    let current = claim_one(&b, "a").await;
    expect_err(
        b.engine
            .suspend(&stale.handle, &SuspendRequest::on("s1", ["a"]))
            .await,
        ErrorKind::LeaseLost,
    );
    expect_err(
        b.engine
            .create_waitpoint(&stale.handle, &WaitpointRequest::new("a"))
            .await,
        ErrorKind::LeaseLost,
    );
    suspend_on(&b, &current, SuspendRequest::on("s1", ["a"])).await;
}

pub async fn resume_wakes_waiting_claim(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let grants = suspend_on(&b, &claimed, SuspendRequest::on("s1", ["a"])).await;
    let engine = b.engine.clone();
    let waiter = tokio::spawn(async move {
        engine
            .claim_wait(&claim_req("a", 1), Duration::from_secs(10))
            .await
    });
    tokio::time::sleep(ms(100)).await;
    let started = std::time::Instant::now();
    send(&b, &grants[0], "go").await;
    let got = waiter.await.expect("join").expect("claim");
    assert_eq!(got.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the resume woke the waiting claim"
    );
    assert_eq!(got[0].signals.len(), 1);
}

pub async fn operator_signal_is_namespaced(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    waitpoint(&b, &claimed, "a").await;
    expect_err(
        b.engine.signal("other", id, "a", &signal("x")).await,
        ErrorKind::NotFound,
    );
    expect_err(
        b.engine
            .signal("default", id, "missing", &signal("x"))
            .await,
        ErrorKind::NotFound,
    );
    let resp = b
        .engine
        .signal("default", id, "a", &signal("x"))
        .await
        .expect("operator signal");
    assert!(!resp.duplicate && !resp.resumed);
    assert_eq!(signal_count(&b, id).await, 1);
}

pub async fn invalid_suspend_rejected_nothing_stored(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let too_many = ResumeCondition::Count {
        n: 3,
        distinct: true,
    };
    expect_invalid(
        b.engine
            .suspend(
                &claimed.handle,
                &SuspendRequest::on("s1", ["a", "b"]).condition(too_many),
            )
            .await,
        "condition.n",
    );
    expect_invalid(
        b.engine
            .suspend(
                &claimed.handle,
                &SuspendRequest::on("s1", Vec::<String>::new()),
            )
            .await,
        "waitpoints",
    );
    expect_invalid(
        b.engine
            .suspend(&claimed.handle, &SuspendRequest::on("s1", ["bad key"]))
            .await,
        "waitpoints",
    );
    expect_invalid(
        b.engine
            .suspend(
                &claimed.handle,
                &SuspendRequest::on("s1", ["a"]).timeout(0, TimeoutPolicy::Fail),
            )
            .await,
        "timeout_ms",
    );
    let exec = get(&b, id).await;
    assert_eq!(exec.state, State::Running);
    assert!(exec.wait.is_none());
}

pub async fn pending_waitpoint_carries_over_to_a_retry(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a").retry(exact_retry(2, 100))).await;
    let first = claim_one(&b, "a").await;
    let a = waitpoint(&b, &first, "approve").await;
    send(&b, &a, "early").await;
    b.engine
        .fail(&first.handle, ff_core::Failure::retryable("crashed"))
        .await
        .expect("fail");
    b.clock.advance(ms(100));
    let second = claim_one(&b, "a").await;
    assert_eq!(second.handle.attempt, 2);
    let again = waitpoint(&b, &second, "approve").await;
    assert_eq!(
        again.token, a.token,
        "the retry takes the pending waitpoint over"
    );
    let resp = b
        .engine
        .suspend(&second.handle, &SuspendRequest::on("s1", ["approve"]))
        .await
        .expect("suspend");
    assert!(
        matches!(resp, SuspendResponse::AlreadySatisfied { ref signals } if signals.len() == 1),
        "{resp:?}"
    );
    let exec = get(&b, id).await;
    assert_eq!(exec.wait.map(|w| w.waitpoints[0].attempt), Some(2));
}

pub async fn refused_suspend_leaves_nothing(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let a = waitpoint(&b, &claimed, "a").await;
    send(&b, &a, "go").await;
    b.engine
        .suspend(&claimed.handle, &SuspendRequest::on("s1", ["a"]))
        .await
        .expect("already satisfied");
    // `a` is closed now: the whole suspend is refused, `fresh` not made.
    expect_err(
        b.engine
            .suspend(&claimed.handle, &SuspendRequest::on("s2", ["fresh", "a"]))
            .await,
        ErrorKind::Conflict,
    );
    let wait = get(&b, id).await.wait.expect("wait state");
    assert!(wait.waitpoint("fresh").is_none(), "{wait:?}");
    assert_eq!(wait.suspensions.len(), 1);
}

pub async fn retry_after_resume_sees_earlier_signals(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    submit(&b, job("a").retry(exact_retry(2, 100))).await;
    let first = claim_one(&b, "a").await;
    let grants = suspend_on(&b, &first, SuspendRequest::on("s1", ["approve"])).await;
    send(&b, &grants[0], "approved").await;
    let resumed = claim_one(&b, "a").await;
    assert_eq!(resumed.signals.len(), 1);
    b.engine
        .fail(&resumed.handle, ff_core::Failure::retryable("flaky"))
        .await
        .expect("fail");
    b.clock.advance(ms(100));
    let retry = claim_one(&b, "a").await;
    assert_eq!(retry.handle.attempt, 2);
    let names: Vec<&str> = retry.signals.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["approved"],
        "the retry runs from the top with the approval"
    );
}
