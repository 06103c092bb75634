//! The fault wrappers do what they say, over the reference backend.

use std::sync::Arc;
use std::time::Duration;

use ff_core::{
    ClaimRequest, CompletionBackend, ErrorKind, ExecutionOps, JsonText, LeaseOps, ManualClock,
    ReadOps, SubmitRequest,
};
use ff_testkit::faults::{CrashingBackend, DroppingCompletions};
use ff_testkit::reference::ReferenceBackend;
use futures::StreamExt;

fn reference() -> Arc<ReferenceBackend> {
    Arc::new(ReferenceBackend::new(Arc::new(ManualClock::default())))
}

#[tokio::test]
async fn crashing_backend_fails_everything_after_k_writes() {
    let inner = reference();
    let crashing = CrashingBackend::new(inner.clone(), 2);
    let req = || SubmitRequest::new("a", "k", JsonText::null());
    let first = crashing.submit(req()).await.expect("first write");
    crashing.submit(req()).await.expect("second write");
    assert!(crashing.crashed());
    let err = crashing.submit(req()).await.expect_err("third write");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let err = crashing
        .get_execution(first.id)
        .await
        .expect_err("reads too");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    // What committed before the crash is still there for a restart.
    assert!(inner.get_execution(first.id).await.is_ok());
}

#[tokio::test]
async fn dropping_completions_drops_selected_events() {
    let inner = reference();
    let kept_lane = "keep";
    let dropping = DroppingCompletions::new(inner.clone(), |p| p.namespace == "drop-me");
    let mut stream = dropping.subscribe_completions().await.expect("subscribe");
    for ns in ["drop-me", "default"] {
        let id = inner
            .submit(SubmitRequest::new(kept_lane, "k", JsonText::null()).namespace(ns))
            .await
            .expect("submit")
            .id;
        let claimed = inner
            .claim(&ClaimRequest::new([kept_lane], "w").namespace(ns))
            .await
            .expect("claim");
        assert_eq!(claimed[0].handle.execution_id, id);
        inner
            .complete(&claimed[0].handle, JsonText::null())
            .await
            .expect("complete");
    }
    let got = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event")
        .expect("open stream");
    assert_eq!(got.namespace, "default");
    assert_eq!(dropping.dropped(), 1);
}
