//! Small helpers the scenarios share.

use std::fmt::Debug;
use std::time::Duration;

use ff_core::{
    ClaimRequest, Claimed, EngineError, ErrorKind, Execution, ExecutionId, JsonText, RetryPolicy,
    SubmitRequest,
};

pub use ff_core::Clock;

use crate::TestBackend;

/// A request on `lane` with a small payload and default settings.
pub fn job(lane: &str) -> SubmitRequest {
    SubmitRequest::new(lane, "job", JsonText::unchecked(r#"{"n": 1}"#))
}

/// A retry policy without jitter, so retry times are exact.
pub fn exact_retry(max_attempts: u32, initial_backoff_ms: u64) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff_ms,
        max_backoff_ms: initial_backoff_ms * 1000,
        jitter_percent: 0,
    }
}

/// A claim request for one lane.
pub fn claim_req(lane: &str, n: u32) -> ClaimRequest {
    ClaimRequest::new([lane], "worker-1").max(n)
}

/// Submits and returns the id.
pub async fn submit(b: &TestBackend, req: SubmitRequest) -> ExecutionId {
    b.engine.submit(req).await.expect("submit").id
}

/// Claims exactly one execution from `lane`.
pub async fn claim_one(b: &TestBackend, lane: &str) -> Claimed {
    let mut claimed = b.engine.claim(&claim_req(lane, 1)).await.expect("claim");
    assert_eq!(
        claimed.len(),
        1,
        "expected one claimable execution on {lane}"
    );
    claimed.remove(0)
}

/// Claims the one claimable execution on `lane` and completes it with
/// `null`; its id.
pub async fn complete_one(b: &TestBackend, lane: &str) -> ExecutionId {
    let claimed = claim_one(b, lane).await;
    b.engine
        .complete(&claimed.handle, JsonText::null())
        .await
        .expect("complete");
    claimed.handle.execution_id
}

/// Asserts nothing is claimable on `lane`.
pub async fn claim_none(b: &TestBackend, lane: &str) {
    let claimed = b.engine.claim(&claim_req(lane, 10)).await.expect("claim");
    assert!(
        claimed.is_empty(),
        "expected nothing claimable, got {claimed:?}"
    );
}

pub async fn get(b: &TestBackend, id: ExecutionId) -> Execution {
    b.engine.get_execution(id).await.expect("get")
}

/// Asserts `result` failed with `kind`, returning the error.
#[track_caller]
pub fn expect_err<T: Debug>(result: Result<T, EngineError>, kind: ErrorKind) -> EngineError {
    match result {
        Ok(value) => panic!("expected {kind:?}, got Ok({value:?})"),
        Err(err) => {
            assert_eq!(err.kind(), kind, "unexpected error: {err}");
            err
        }
    }
}

/// Asserts `result` is `Invalid` naming `field`.
#[track_caller]
pub fn expect_invalid<T: Debug>(result: Result<T, EngineError>, field: &str) {
    let err = expect_err(result, ErrorKind::Invalid);
    assert_eq!(err.field(), Some(field), "wrong field in {err}");
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
