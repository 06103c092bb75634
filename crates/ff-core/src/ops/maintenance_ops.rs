//! `MaintenanceOps`: bounded scans the engine drives on an interval. Each is
//! idempotent and safe to run on several nodes at once; each returns how many
//! executions it changed (at most `limit`).

use async_trait::async_trait;

use crate::error::EngineError;

#[async_trait]
pub trait MaintenanceOps: Send + Sync {
    /// Expires running executions whose lease or attempt timeout has passed,
    /// as retryable failures (`lease_expired` / `attempt_timeout`).
    async fn expire_leases(&self, limit: u32) -> Result<u32, EngineError>;

    /// Moves due scheduled executions to ready and wakes waiting workers.
    async fn promote_scheduled(&self, limit: u32) -> Result<u32, EngineError>;

    /// Fails non-terminal executions whose deadline has passed (`deadline`).
    async fn expire_deadlines(&self, limit: u32) -> Result<u32, EngineError>;
}
