//! The completion outbox and its subscription.

use std::time::Duration;

use ff_core::{CompletionPayload, CompletionStream, Failure, JsonText, Outcome, RetryPolicy};
use futures::StreamExt;

use super::support::*;
use crate::BackendFactory;

async fn next_payload(stream: &mut CompletionStream) -> CompletionPayload {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a completion arrives")
        .expect("the stream stays open")
}

pub async fn completion_recorded_for_every_terminal_transition(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let done = submit(&b, job("a")).await;
    let failed = submit(&b, job("a").retry(RetryPolicy::none())).await;
    let cancelled = submit(&b, job("a")).await;
    let late = submit(&b, job("b").deadline(b.clock.now_ms() + 10)).await;
    let retried = submit(&b, job("c").retry(exact_retry(2, 100))).await;

    let claimed = b.engine.claim(&claim_req("a", 2)).await.expect("claim");
    b.engine
        .complete(&claimed[0].handle, JsonText::null())
        .await
        .expect("complete");
    b.engine
        .fail(&claimed[1].handle, Failure::retryable("x"))
        .await
        .expect("fail");
    b.engine.cancel(cancelled).await.expect("cancel");
    let c = claim_one(&b, "c").await;
    b.engine
        .fail(&c.handle, Failure::retryable("again"))
        .await
        .expect("retry");
    b.clock.advance(ms(10));
    b.engine.expire_deadlines(10).await.expect("scan");

    let entries = b
        .engine
        .undispatched_completions(0, 100)
        .await
        .expect("outbox");
    let got: Vec<_> = entries
        .iter()
        .map(|p| (p.execution_id, p.outcome))
        .collect();
    assert_eq!(
        got,
        vec![
            (done, Outcome::Completed),
            (failed, Outcome::Failed),
            (cancelled, Outcome::Cancelled),
            (late, Outcome::Failed),
        ],
        "one entry per terminal transition, none for the retry of {retried}"
    );
    assert!(
        entries.windows(2).all(|w| w[0].seq < w[1].seq),
        "seq increases"
    );
    assert!(b
        .engine
        .undispatched_completions(60_000, 100)
        .await
        .expect("outbox")
        .is_empty());
}

pub async fn two_completion_streams_are_independent(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let mut first = b
        .completions
        .subscribe_completions()
        .await
        .expect("subscribe");
    let mut second = b
        .completions
        .subscribe_completions()
        .await
        .expect("subscribe");
    let id = submit(&b, job("a")).await;
    complete_one(&b, "a").await;
    assert_eq!(next_payload(&mut first).await.execution_id, id);
    drop(first);
    assert_eq!(
        next_payload(&mut second).await.execution_id,
        id,
        "dropping one leaves the other"
    );
}

pub async fn completion_payload_describes_transition(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let mut stream = b
        .completions
        .subscribe_completions()
        .await
        .expect("subscribe");
    let id = submit(&b, job("a").namespace("tenant-x").retry(exact_retry(3, 50))).await;
    let req = ff_core::ClaimRequest::new(["a"], "w").namespace("tenant-x");
    let first = b.engine.claim(&req).await.expect("claim").remove(0);
    b.engine
        .fail(&first.handle, Failure::retryable("x"))
        .await
        .expect("fail");
    b.clock.advance(ms(50));
    let second = b.engine.claim(&req).await.expect("claim").remove(0);
    b.clock.advance(ms(7));
    b.engine
        .complete(&second.handle, JsonText::null())
        .await
        .expect("complete");
    let payload = next_payload(&mut stream).await;
    assert_eq!(payload.execution_id, id);
    assert_eq!(payload.namespace, "tenant-x");
    assert_eq!(payload.outcome, Outcome::Completed);
    assert_eq!(payload.attempt, 2);
    assert_eq!(payload.committed_at, b.clock.now_ms());
    assert_eq!((payload.flow_id, payload.node_key.as_deref()), (None, None));
    let stored = b
        .engine
        .undispatched_completions(0, 10)
        .await
        .expect("outbox");
    assert_eq!(stored, vec![payload], "the stream carries the outbox entry");
}
