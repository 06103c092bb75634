//! `LeaseOps`: what workers do.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::EngineError;
use crate::json::JsonText;
use crate::lease::{
    ClaimRequest, Claimed, CompleteResponse, FailResponse, Failure, LeaseHandle, Renewed,
};

#[async_trait]
pub trait LeaseOps: Send + Sync {
    /// Claims up to `req.n` claimable executions in lane order; may be empty.
    async fn claim(&self, req: &ClaimRequest) -> Result<Vec<Claimed>, EngineError>;

    /// Claims, waiting up to `timeout` for work to arrive when there is none.
    /// Woken by the backend's notifications, never by a tight poll.
    async fn claim_wait(
        &self,
        req: &ClaimRequest,
        timeout: Duration,
    ) -> Result<Vec<Claimed>, EngineError>;

    async fn renew(&self, handle: &LeaseHandle) -> Result<Renewed, EngineError>;

    /// Hands the execution back without consuming its attempt.
    async fn release(&self, handle: &LeaseHandle) -> Result<(), EngineError>;

    async fn complete(
        &self,
        handle: &LeaseHandle,
        result: JsonText,
    ) -> Result<CompleteResponse, EngineError>;

    async fn fail(
        &self,
        handle: &LeaseHandle,
        failure: Failure,
    ) -> Result<FailResponse, EngineError>;
}
