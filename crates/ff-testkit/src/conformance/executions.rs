//! Submitting, idempotency, cancel, requeue, validation and limits.

use ff_core::{
    ErrorKind, Failure, JsonText, ListFilter, Outcome, RetryPolicy, State, SubmitRequest,
};

use super::support::*;
use crate::BackendFactory;

pub async fn submit_then_get(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let payload = r#"{ "to":"ada",  "n": [1, 2.50, 3] }"#;
    let req = SubmitRequest::new("emails", "send", JsonText::unchecked(payload))
        .priority(7)
        .capabilities(["smtp", "eu"])
        .tag("team", "growth")
        .lease_ms(5_000)
        .attempt_timeout_ms(60_000)
        .deadline(b.clock.now_ms() + 3_600_000)
        .retry(exact_retry(5, 250));
    let submitted = b.engine.submit(req).await.expect("submit");
    assert!(submitted.created);

    let exec = get(&b, submitted.id).await;
    assert_eq!(exec.id, submitted.id);
    assert_eq!(exec.namespace, "default");
    assert_eq!(exec.lane, "emails");
    assert_eq!(exec.kind, "send");
    assert_eq!(exec.payload.as_str(), payload, "payload is stored verbatim");
    assert_eq!(exec.priority, 7);
    assert_eq!(exec.capabilities, vec!["eu".to_owned(), "smtp".to_owned()]);
    assert_eq!(exec.tags.get("team").map(String::as_str), Some("growth"));
    assert_eq!(exec.lease_ms, 5_000);
    assert_eq!(exec.attempt_timeout_ms, Some(60_000));
    assert_eq!(exec.retry, exact_retry(5, 250));
    assert_eq!(exec.state, State::Ready);
    assert_eq!(exec.attempt, 0);
    assert_eq!(exec.created_at, b.clock.now_ms());
    assert!(exec.attempts.is_empty());
    assert!(exec.result.is_none() && exec.error.is_none());
}

pub async fn submit_batch(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let reqs = vec![
        job("a"),
        job("b").priority(3),
        job("a").run_at(b.clock.now_ms() + 1_000),
    ];
    let submitted = b.engine.submit_batch(reqs).await.expect("batch");
    assert_eq!(submitted.len(), 3);
    assert!(submitted.iter().all(|s| s.created));
    assert!(submitted[0].id < submitted[1].id && submitted[1].id < submitted[2].id);
    assert_eq!(get(&b, submitted[1].id).await.priority, 3);
    assert_eq!(get(&b, submitted[2].id).await.state, State::Scheduled);

    let bad = vec![job("a"), job("no spaces allowed"), job("c")];
    expect_invalid(b.engine.submit_batch(bad).await, "requests[1].lane");
    let all = b
        .engine
        .list_executions(&ListFilter::default())
        .await
        .expect("list");
    assert_eq!(all.items.len(), 3, "a rejected batch stores nothing");
}

pub async fn idempotent_submit_returns_first_id(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let first = b
        .engine
        .submit(job("a").idempotency_key("order-42"))
        .await
        .expect("submit");
    assert!(first.created);
    let again = SubmitRequest::new("a", "job", JsonText::unchecked(r#"{"other":true}"#))
        .idempotency_key("order-42");
    let second = b.engine.submit(again).await.expect("resubmit");
    assert_eq!(second.id, first.id);
    assert!(!second.created);
    assert_eq!(
        get(&b, first.id).await.payload.as_str(),
        r#"{"n": 1}"#,
        "the first payload stays"
    );

    // The key still matches once the execution is terminal.
    complete_one(&b, "a").await;
    let third = b
        .engine
        .submit(job("a").idempotency_key("order-42"))
        .await
        .expect("submit");
    assert_eq!((third.id, third.created), (first.id, false));

    // Keys are scoped to the namespace.
    let other = b
        .engine
        .submit(job("a").namespace("tenant-b").idempotency_key("order-42"))
        .await
        .expect("submit");
    assert!(other.created);
    assert_ne!(other.id, first.id);
}

/// A repeat of an idempotency key answers the first id either way, and
/// says whether its spec differed from the stored one (defaults resolved,
/// so spelling a default out is the same spec).
pub async fn idempotent_repeat_says_when_its_spec_differs(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let first = b
        .engine
        .submit(job("a").idempotency_key("k1"))
        .await
        .expect("submit");
    assert!(first.created && !first.conflicting_spec);
    let same = b
        .engine
        .submit(job("a").idempotency_key("k1").priority(0).lease_ms(30_000))
        .await
        .expect("repeat");
    assert_eq!(
        (same.id, same.created, same.conflicting_spec),
        (first.id, false, false)
    );
    let other =
        SubmitRequest::new("a", "job", JsonText::unchecked(r#"{"n": 2}"#)).idempotency_key("k1");
    let differs = b.engine.submit(other).await.expect("repeat");
    assert_eq!(
        (differs.id, differs.created, differs.conflicting_spec),
        (first.id, false, true)
    );
    let elsewhere = b
        .engine
        .submit(job("b").idempotency_key("k1"))
        .await
        .expect("repeat");
    assert!(elsewhere.conflicting_spec, "another lane is another spec");
    assert_eq!(get(&b, first.id).await.payload.as_str(), r#"{"n": 1}"#);

    // Inside one batch, a repeat is compared with the first request.
    let answers = b
        .engine
        .submit_batch(vec![
            job("a").idempotency_key("k2"),
            job("a").idempotency_key("k2").priority(5),
            job("a").idempotency_key("k2"),
            job("a").idempotency_key("k1"),
        ])
        .await
        .expect("batch");
    let flags: Vec<(bool, bool)> = answers
        .iter()
        .map(|a| (a.created, a.conflicting_spec))
        .collect();
    assert_eq!(
        flags,
        [(true, false), (false, true), (false, false), (false, false)]
    );
    assert_eq!(answers[1].id, answers[0].id);
    assert_eq!(answers[3].id, first.id);
}

pub async fn idempotent_batch_duplicates_resolve_to_first(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let reqs = vec![
        job("a").idempotency_key("k1"),
        job("a").idempotency_key("k2"),
        job("b").idempotency_key("k1"),
        job("a"),
    ];
    let out = b.engine.submit_batch(reqs).await.expect("batch");
    assert_eq!(out[2].id, out[0].id);
    assert_eq!(
        out.iter().map(|s| s.created).collect::<Vec<_>>(),
        vec![true, true, false, true]
    );
    let again = b
        .engine
        .submit(job("a").idempotency_key("k2"))
        .await
        .expect("submit");
    assert_eq!((again.id, again.created), (out[1].id, false));
    let all = b
        .engine
        .list_executions(&ListFilter::default())
        .await
        .expect("list");
    assert_eq!(all.items.len(), 3);
}

pub async fn cancel_ready(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a")).await;
    let resp = b.engine.cancel(id).await.expect("cancel");
    assert_eq!((resp.outcome, resp.changed), (Outcome::Cancelled, true));
    let exec = get(&b, id).await;
    assert_eq!(exec.state, State::Cancelled);
    assert_eq!(exec.finished_at, Some(b.clock.now_ms()));
    claim_none(&b, "a").await;
}

pub async fn cancel_running_then_complete_gets_not_active(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a")).await;
    let claimed = claim_one(&b, "a").await;
    b.engine.cancel(id).await.expect("cancel");
    let err = expect_err(b.engine.renew(&claimed.handle).await, ErrorKind::NotActive);
    assert!(matches!(
        err,
        ff_core::EngineError::NotActive {
            outcome: Outcome::Cancelled
        }
    ));
    expect_err(
        b.engine.complete(&claimed.handle, JsonText::null()).await,
        ErrorKind::NotActive,
    );
    expect_err(
        b.engine
            .fail(&claimed.handle, Failure::retryable("x"))
            .await,
        ErrorKind::NotActive,
    );
    let exec = get(&b, id).await;
    assert_eq!(exec.state, State::Cancelled);
    assert!(exec.result.is_none());
    assert_eq!(
        exec.attempts[0].end,
        Some(ff_core::execution::AttemptEnd::Cancelled)
    );
}

pub async fn cancel_terminal_is_noop_with_outcome(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a")).await;
    let claimed = claim_one(&b, "a").await;
    b.engine
        .complete(&claimed.handle, JsonText::unchecked("42"))
        .await
        .expect("complete");
    let before = get(&b, id).await;
    b.clock.advance(ms(10));
    let resp = b.engine.cancel(id).await.expect("cancel");
    assert_eq!((resp.outcome, resp.changed), (Outcome::Completed, false));
    assert_eq!(get(&b, id).await, before, "nothing changed");
}

pub async fn requeue_failed_solo(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let id = submit(&b, job("a").retry(RetryPolicy::none())).await;
    let claimed = claim_one(&b, "a").await;
    b.engine
        .fail(&claimed.handle, Failure::retryable("boom"))
        .await
        .expect("fail");
    assert_eq!(get(&b, id).await.state, State::Failed);

    b.engine.requeue(id).await.expect("requeue");
    let exec = get(&b, id).await;
    assert_eq!(exec.state, State::Ready);
    assert!(exec.finished_at.is_none());
    let second = claim_one(&b, "a").await;
    assert_eq!(second.handle.attempt, 2);
    b.engine
        .complete(&second.handle, JsonText::null())
        .await
        .expect("complete");

    expect_err(b.engine.requeue(id).await, ErrorKind::Conflict);
    expect_err(
        b.engine.requeue(ff_core::ExecutionId::new()).await,
        ErrorKind::NotFound,
    );
}

pub async fn invalid_inputs_rejected_and_nothing_stored(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    expect_invalid(b.engine.submit(job("has space")).await, "lane");
    expect_invalid(b.engine.submit(job("")).await, "lane");
    let not_json = SubmitRequest::new("a", "job", JsonText::unchecked("{nope"));
    expect_invalid(b.engine.submit(not_json).await, "payload");
    let huge = format!("\"{}\"", "x".repeat(1024 * 1024));
    expect_invalid(
        b.engine
            .submit(SubmitRequest::new("a", "job", JsonText::unchecked(huge)))
            .await,
        "payload",
    );
    expect_invalid(b.engine.submit(job("a").lease_ms(0)).await, "lease_ms");
    expect_invalid(b.engine.submit(job("a").priority(101)).await, "priority");
    expect_invalid(b.engine.submit(job("a").priority(-101)).await, "priority");
    expect_invalid(
        b.engine.submit(job("a").namespace("bad/ns?")).await,
        "namespace",
    );
    let retry = RetryPolicy {
        max_attempts: 0,
        ..RetryPolicy::default()
    };
    expect_invalid(
        b.engine.submit(job("a").retry(retry)).await,
        "retry.max_attempts",
    );
    expect_invalid(b.engine.claim(&claim_req("a", 0)).await, "n");
    expect_invalid(b.engine.claim(&claim_req("bad lane", 1)).await, "lanes");

    let all = b
        .engine
        .list_executions(&ListFilter::default())
        .await
        .expect("list");
    assert!(all.items.is_empty(), "nothing stored: {:?}", all.items);
    assert!(b
        .engine
        .count_by_lane_and_state("default")
        .await
        .expect("counts")
        .is_empty());

    // A bad result or error is refused and the execution keeps running.
    let id = submit(&b, job("a")).await;
    let claimed = claim_one(&b, "a").await;
    expect_invalid(
        b.engine
            .complete(&claimed.handle, JsonText::unchecked("{oops"))
            .await,
        "result",
    );
    let exec = get(&b, id).await;
    assert_eq!(exec.state, State::Running);
    assert!(exec.result.is_none());
}

pub async fn limits_enforced(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let limits = ff_core::Limits::default();
    let mut many_tags = job("a");
    for i in 0..=limits.max_tags {
        many_tags = many_tags.tag(format!("k{i}"), "v");
    }
    expect_invalid(b.engine.submit(many_tags).await, "tags");
    expect_invalid(
        b.engine.submit(job("a").tag("k", "v".repeat(256))).await,
        "tags",
    );
    let long_kind = SubmitRequest::new("a", "k".repeat(129), JsonText::null());
    expect_invalid(b.engine.submit(long_kind).await, "kind");
    let caps: Vec<String> = (0..=limits.max_capabilities)
        .map(|i| format!("c{i}"))
        .collect();
    expect_invalid(
        b.engine.submit(job("a").capabilities(caps)).await,
        "capabilities",
    );
    let batch: Vec<_> = (0..=limits.max_batch).map(|_| job("a")).collect();
    expect_invalid(b.engine.submit_batch(batch).await, "requests");
    expect_invalid(b.engine.submit_batch(Vec::new()).await, "requests");

    // Exactly at the limits is accepted.
    let at_limit = format!("\"{}\"", "x".repeat(limits.max_payload_bytes - 2));
    let id = submit(
        &b,
        SubmitRequest::new("a", "k".repeat(128), JsonText::unchecked(at_limit)),
    )
    .await;
    let claimed = claim_one(&b, "a").await;
    expect_invalid(
        b.engine
            .fail(
                &claimed.handle,
                Failure::retryable("e".repeat(limits.max_error_bytes + 1)),
            )
            .await,
        "error",
    );
    let big_result = format!("\"{}\"", "r".repeat(limits.max_result_bytes));
    expect_invalid(
        b.engine
            .complete(&claimed.handle, JsonText::unchecked(big_result))
            .await,
        "result",
    );
    assert_eq!(
        get(&b, id).await.state,
        State::Running,
        "refused input changes nothing"
    );
    b.engine
        .fail(
            &claimed.handle,
            Failure::permanent("e".repeat(limits.max_error_bytes)),
        )
        .await
        .expect("an error at the limit is accepted");
}
