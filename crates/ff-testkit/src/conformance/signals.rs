//! Suspend, waitpoints, signals, tokens and suspension timeouts.

use std::time::Duration;

use ff_core::execution::AttemptEnd;
use ff_core::flow::FlowSpec;
use ff_core::suspension::{
    Keyring, ResumeCondition, SignalRequest, SignalResponse, SuspendRequest, SuspendResponse,
    TimeoutPolicy, WaitpointGrant, WaitpointKey, WaitpointRequest, WaitpointSecret,
    SUSPENSION_TIMEOUT, TIMEOUT_SIGNAL,
};
use ff_core::{Claimed, EngineError, ErrorKind, ExecutionId, JsonText, Outcome, State};

use super::flow_support::{assert_states, claim_node, create, edge, node, pump, run_node};
use super::support::*;
use crate::{BackendFactory, TestBackend};

fn signal(name: &str) -> SignalRequest {
    SignalRequest::new(name, JsonText::unchecked(r#"{"ok": true}"#)).source("test")
}

async fn waitpoint(b: &TestBackend, claimed: &Claimed, key: &str) -> WaitpointGrant {
    b.engine
        .create_waitpoint(&claimed.handle, &WaitpointRequest::new(key))
        .await
        .expect("create waitpoint")
}

/// Suspends and expects `Suspended`; the tokens by waitpoint key.
async fn suspend_on(
    b: &TestBackend,
    claimed: &Claimed,
    req: SuspendRequest,
) -> Vec<WaitpointGrant> {
    match b
        .engine
        .suspend(&claimed.handle, &req)
        .await
        .expect("suspend")
    {
        SuspendResponse::Suspended { waitpoints, .. } => waitpoints,
        other => panic!("expected Suspended, got {other:?}"),
    }
}

async fn send(b: &TestBackend, grant: &WaitpointGrant, name: &str) -> SignalResponse {
    b.engine
        .signal_by_token(&grant.token, &signal(name))
        .await
        .expect("signal")
}

async fn state(b: &TestBackend, id: ExecutionId) -> State {
    get(b, id).await.state
}

async fn signal_count(b: &TestBackend, id: ExecutionId) -> usize {
    get(b, id).await.wait.map_or(0, |w| w.signals.len())
}

/// Submits a job on `lane` and claims it.
async fn running(b: &TestBackend, lane: &str) -> Claimed {
    submit(b, job(lane)).await;
    claim_one(b, lane).await
}

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

pub async fn forged_token_rejected_nothing_stored(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let a = waitpoint(&b, &claimed, "a").await;
    let (body, _) = a.token.split_once('.').expect("token has two parts");
    let forged = format!("{body}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    for bad in [forged.as_str(), "not-a-token", body, ""] {
        expect_invalid(b.engine.signal_by_token(bad, &signal("x")).await, "token");
    }
    // A well-formed token signed with another secret.
    let other = Keyring::new(vec![WaitpointKey {
        kid: "k1".to_owned(),
        secret: WaitpointSecret::random(),
        created_at: 0,
        verify_until: None,
    }])
    .expect("keyring");
    let foreign = other.mint("default", id, "a", a.expires_at);
    expect_invalid(
        b.engine.signal_by_token(&foreign, &signal("x")).await,
        "token",
    );
    assert_eq!(signal_count(&b, id).await, 0);
}

pub async fn expired_token_rejected(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let req = WaitpointRequest {
        key: "a".to_owned(),
        ttl_ms: Some(1_000),
    };
    let a = b
        .engine
        .create_waitpoint(&claimed.handle, &req)
        .await
        .expect("create waitpoint");
    assert_eq!(a.expires_at, b.clock.now_ms() + 1_000);
    b.clock.advance(ms(1_000));
    expect_invalid(
        b.engine.signal_by_token(&a.token, &signal("x")).await,
        "token",
    );
    expect_err(
        b.engine.signal("default", id, "a", &signal("x")).await,
        ErrorKind::Conflict,
    );
    assert_eq!(signal_count(&b, id).await, 0);
}

pub async fn rotated_kid_still_verifies_in_grace(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let old_a = waitpoint(&b, &claimed, "a").await;
    let old_b = waitpoint(&b, &claimed, "b").await;
    let kid = b
        .engine
        .rotate_waitpoint_key(None, 300_000)
        .await
        .expect("rotate");
    assert_eq!(kid, "k2");
    let new_c = waitpoint(&b, &claimed, "c").await;
    assert_ne!(kid_of(&new_c.token), kid_of(&old_a.token));
    assert_eq!(kid_of(&new_c.token), "k2");
    send(&b, &old_a, "in-grace").await;
    send(&b, &new_c, "new-key").await;
    b.clock.advance(ms(300_000));
    expect_invalid(
        b.engine.signal_by_token(&old_b.token, &signal("x")).await,
        "token",
    );
    send(&b, &new_c, "still-good").await;
    expect_invalid(b.engine.rotate_waitpoint_key(None, 1_000).await, "grace_ms");
}

fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let body = token.split('.').next().unwrap_or_default();
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .expect("base64 body");
    String::from_utf8(text)
        .expect("utf-8")
        .split('|')
        .next()
        .unwrap_or_default()
        .to_owned()
}

pub async fn token_for_other_waitpoint_rejected(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let a = waitpoint(&b, &claimed, "a").await;
    // Another waitpoint's name in the message breaks the signature.
    let tampered = retarget(&a.token, "|a|", "|b|");
    waitpoint(&b, &claimed, "b").await;
    expect_invalid(
        b.engine.signal_by_token(&tampered, &signal("x")).await,
        "token",
    );
    // A genuine token for a waitpoint this execution never created.
    let stray = b
        .engine
        .waitpoint_token("default", id, "zzz", a.expires_at)
        .await
        .expect("mint");
    expect_err(
        b.engine.signal_by_token(&stray, &signal("x")).await,
        ErrorKind::NotFound,
    );
    assert_eq!(signal_count(&b, id).await, 0);
}

fn retarget(token: &str, from: &str, to: &str) -> String {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (body, mac) = token.split_once('.').expect("two parts");
    let text = String::from_utf8(engine.decode(body).expect("b64")).expect("utf-8");
    format!("{}.{mac}", engine.encode(text.replace(from, to)))
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

pub async fn token_is_the_same_on_every_backend(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let secret = WaitpointSecret::from_bytes([42; 32]);
    let kid = b
        .engine
        .rotate_waitpoint_key(Some(secret.clone()), 600_000)
        .await
        .expect("rotate");
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let grant = waitpoint(&b, &claimed, "approve").await;
    let reference = Keyring::new(vec![WaitpointKey {
        kid,
        secret,
        created_at: 0,
        verify_until: None,
    }])
    .expect("keyring");
    assert_eq!(
        grant.token,
        reference.mint("default", id, "approve", grant.expires_at)
    );
    let fixed: ExecutionId = "0190f3a0-0000-7000-8000-000000000001".parse().expect("id");
    let minted = b
        .engine
        .waitpoint_token("default", fixed, "approve", 1_800_000_000_000)
        .await
        .expect("mint");
    assert_eq!(
        minted,
        reference.mint("default", fixed, "approve", 1_800_000_000_000)
    );
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

pub async fn adopting_a_secret_is_idempotent(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let secret = WaitpointSecret::from_bytes([7; 32]);
    let first = b
        .engine
        .adopt_waitpoint_secret(secret.clone(), 600_000)
        .await
        .expect("adopt");
    assert_eq!(first.as_deref(), Some("k2"));
    let again = b
        .engine
        .adopt_waitpoint_secret(secret.clone(), 600_000)
        .await
        .expect("adopt again");
    assert_eq!(again, None, "already the signing key: nothing rotates");
    let id = ExecutionId::new();
    let reference = Keyring::new(vec![WaitpointKey {
        kid: "k2".to_owned(),
        secret,
        created_at: 0,
        verify_until: None,
    }])
    .expect("keyring");
    let minted = b
        .engine
        .waitpoint_token("default", id, "w", 1_800_000_000_000)
        .await
        .expect("mint");
    assert_eq!(
        minted,
        reference.mint("default", id, "w", 1_800_000_000_000)
    );
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
