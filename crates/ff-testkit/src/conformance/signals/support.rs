//! Helpers the signal scenarios share.

use ff_core::suspension::{
    SignalRequest, SignalResponse, SuspendRequest, SuspendResponse, WaitpointGrant,
    WaitpointRequest,
};
use ff_core::{Claimed, ExecutionId, JsonText, State};

use crate::conformance::support::*;
use crate::TestBackend;

pub fn signal(name: &str) -> SignalRequest {
    SignalRequest::new(name, JsonText::unchecked(r#"{"ok": true}"#)).source("test")
}

pub async fn waitpoint(b: &TestBackend, claimed: &Claimed, key: &str) -> WaitpointGrant {
    b.engine
        .create_waitpoint(&claimed.handle, &WaitpointRequest::new(key))
        .await
        .expect("create waitpoint")
}

/// Suspends and expects `Suspended`; the tokens by waitpoint key.
pub async fn suspend_on(
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

pub async fn send(b: &TestBackend, grant: &WaitpointGrant, name: &str) -> SignalResponse {
    b.engine
        .signal_by_token(&grant.token, &signal(name))
        .await
        .expect("signal")
}

pub async fn state(b: &TestBackend, id: ExecutionId) -> State {
    get(b, id).await.state
}

pub async fn signal_count(b: &TestBackend, id: ExecutionId) -> usize {
    get(b, id).await.wait.map_or(0, |w| w.signals.len())
}

/// Submits a job on `lane` and claims it.
pub async fn running(b: &TestBackend, lane: &str) -> Claimed {
    submit(b, job(lane)).await;
    claim_one(b, lane).await
}
