//! `FlowOps`: creating, growing and cancelling flows, and the cascade the
//! engine's completion listener drives.

use async_trait::async_trait;

use crate::cascade::{CascadeReport, FlowCancelResponse, NodesAdded};
use crate::completion::CompletionPayload;
use crate::error::EngineError;
use crate::flow::{EdgeSpec, FlowCreated, FlowSpec, NodeSpec};
use crate::ids::FlowId;
use crate::lease::LeaseHandle;

#[async_trait]
pub trait FlowOps: Send + Sync {
    /// Creates a flow and all its members atomically (cycles rejected, named).
    /// A known idempotency key answers the existing flow, `created: false`.
    async fn create_flow(&self, spec: FlowSpec) -> Result<FlowCreated, EngineError>;

    /// Adds nodes and edges to the running flow of the execution holding
    /// `handle`; idempotent by node key.
    async fn add_nodes(
        &self,
        handle: &LeaseHandle,
        nodes: Vec<NodeSpec>,
        edges: Vec<EdgeSpec>,
    ) -> Result<NodesAdded, EngineError>;

    /// Cancels the flow and every non-terminal member in one atomic step.
    async fn cancel_flow(&self, id: FlowId) -> Result<FlowCancelResponse, EngineError>;

    /// Claims the outbox entry and applies its edges in one atomic step; a
    /// duplicate (already dispatched) answers `dispatched: false` and changes
    /// nothing.
    async fn cascade_completion(
        &self,
        payload: &CompletionPayload,
    ) -> Result<CascadeReport, EngineError>;

    /// Cascades several payloads, each exactly as `cascade_completion` would
    /// (its own atomic step: one that fails leaves the others applied), and
    /// answers each one's result in payload order. On an outer error any of
    /// them may have been applied; each is idempotent, so cascading them
    /// again is safe.
    ///
    /// The default runs `cascade_completion` for each, concurrently; a
    /// backend that serializes its writes overrides it to take the whole
    /// batch in one turn, which keeps a burst of completions from queueing
    /// one by one.
    async fn cascade_completions(
        &self,
        payloads: &[CompletionPayload],
    ) -> Result<Vec<Result<CascadeReport, EngineError>>, EngineError> {
        Ok(futures::future::join_all(payloads.iter().map(|p| self.cascade_completion(p))).await)
    }
}
