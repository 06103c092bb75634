//! `MaintenanceOps`: bounded scans the engine drives on an interval. Each is
//! idempotent and safe to run on several nodes at once; each returns how many
//! executions it changed (at most `limit`).

use async_trait::async_trait;

use crate::completion::CompletionPayload;
use crate::error::EngineError;

#[async_trait]
pub trait MaintenanceOps: Send + Sync {
    /// Expires running executions whose lease or attempt timeout has passed,
    /// as retryable failures (`lease_expired` / `attempt_timeout`).
    async fn expire_leases(&self, limit: u32) -> Result<u32, EngineError>;

    /// Applies the timeout policy of suspended executions whose suspension
    /// timeout has passed (`fail`, `cancel`, or `resume` with a `timeout`
    /// signal).
    async fn expire_suspensions(&self, limit: u32) -> Result<u32, EngineError>;

    /// Moves due scheduled executions to ready and wakes waiting workers.
    async fn promote_scheduled(&self, limit: u32) -> Result<u32, EngineError>;

    /// Fails non-terminal executions whose deadline has passed (`deadline`).
    async fn expire_deadlines(&self, limit: u32) -> Result<u32, EngineError>;

    /// Outbox entries not yet dispatched that committed at least
    /// `older_than_ms` ago, oldest first, at most `limit`. The durable record
    /// of completions: the reconciler reads it; tests check it.
    async fn undispatched_completions(
        &self,
        older_than_ms: u64,
        limit: u32,
    ) -> Result<Vec<CompletionPayload>, EngineError>;

    /// Decides blocked flow nodes whose parents all finished at least
    /// `older_than_ms` ago (a safety net beside the outbox; the grace keeps
    /// it from racing the completion listener); returns how many it
    /// promoted or skipped.
    async fn reconcile_blocked(&self, older_than_ms: u64, limit: u32) -> Result<u32, EngineError>;

    /// Deletes dispatched outbox entries that committed at least
    /// `older_than_ms` ago, at most `limit`; returns how many.
    async fn trim_outbox(&self, older_than_ms: u64, limit: u32) -> Result<u32, EngineError>;
}
