//! `ExecutionOps`: submitting and steering executions.

use async_trait::async_trait;

use crate::error::EngineError;
use crate::execution::{SubmitRequest, Submitted};
use crate::ids::ExecutionId;
use crate::lifecycle::CancelResponse;

#[async_trait]
pub trait ExecutionOps: Send + Sync {
    /// Stores one execution, or returns the existing one for a known
    /// idempotency key (`created: false`).
    async fn submit(&self, req: SubmitRequest) -> Result<Submitted, EngineError>;

    /// Stores a batch: all or nothing (on a partitioned backend, per
    /// partition), answers in request order. Items sharing an idempotency
    /// key resolve to the first.
    async fn submit_batch(&self, reqs: Vec<SubmitRequest>) -> Result<Vec<Submitted>, EngineError>;

    /// Cancels a non-terminal execution; a terminal one reports its outcome.
    async fn cancel(&self, id: ExecutionId) -> Result<CancelResponse, EngineError>;

    /// Gives a failed solo execution one more attempt.
    async fn requeue(&self, id: ExecutionId) -> Result<(), EngineError>;
}
