//! The one surface both transports implement, so the [`Client`](crate::Client)
//! and the [`Worker`](crate::Worker) are written once and behave the same
//! embedded or over HTTP.
//!
//! Every call names its namespace; an entity of another namespace is
//! `NotFound` on both transports (the HTTP API answers 404 for it, the
//! embedded transport checks it itself).

mod embedded;
mod http;
mod sse;

use std::time::Duration;

use async_trait::async_trait;
use ff_core::cascade::{FlowCancelResponse, NodesAdded};
use ff_core::explain::Explanation;
use ff_core::flow::{EdgeSpec, FlowCreated, FlowFilter, FlowSpec, FlowSummary, FlowView, NodeSpec};
use ff_core::flow_control::{BudgetStatus, Policy, PolicySpec, UsageReport};
use ff_core::suspension::{
    SignalRequest, SignalResponse, SuspendRequest, SuspendResponse, WaitpointGrant,
    WaitpointRequest,
};
use ff_core::{
    CancelResponse, ClaimRequest, Claimed, CompleteResponse, EngineError, Execution, ExecutionId,
    FailResponse, Failure, FlowId, JsonText, LaneStateCount, LeaseHandle, ListFilter, Page,
    Renewed, SubmitRequest, Submitted,
};

pub(crate) use embedded::Embedded;
pub(crate) use http::Http;

/// What a transport wakes a result waiter with.
#[async_trait]
pub(crate) trait CompletionWatch: Send {
    /// Resolves when the execution may have ended (a hint: the caller
    /// re-reads it), or `false` when the watch is gone for good.
    async fn next(&mut self) -> bool;
}

#[async_trait]
pub(crate) trait Transport: Send + Sync + std::fmt::Debug + 'static {
    async fn submit(&self, ns: &str, req: SubmitRequest) -> Result<Submitted, EngineError>;
    async fn submit_batch(
        &self,
        ns: &str,
        reqs: Vec<SubmitRequest>,
    ) -> Result<Vec<Submitted>, EngineError>;
    async fn create_flow(&self, ns: &str, spec: FlowSpec) -> Result<FlowCreated, EngineError>;

    async fn get_execution(&self, ns: &str, id: ExecutionId) -> Result<Execution, EngineError>;
    async fn list_executions(&self, filter: &ListFilter) -> Result<Page<Execution>, EngineError>;
    async fn get_flow(&self, ns: &str, id: FlowId) -> Result<FlowView, EngineError>;
    async fn list_flows(&self, filter: &FlowFilter) -> Result<Page<FlowSummary>, EngineError>;
    async fn counts(&self, ns: &str) -> Result<Vec<LaneStateCount>, EngineError>;
    async fn why(&self, ns: &str, id: ExecutionId) -> Result<Explanation, EngineError>;

    async fn cancel(&self, ns: &str, id: ExecutionId) -> Result<CancelResponse, EngineError>;
    async fn cancel_flow(&self, ns: &str, id: FlowId) -> Result<FlowCancelResponse, EngineError>;
    async fn requeue(&self, ns: &str, id: ExecutionId) -> Result<(), EngineError>;

    /// Opens a watch that wakes when `id` may have ended. Opened before the
    /// first read, so an end between the two is not missed; best-effort, so
    /// the waiter polls beside it.
    async fn watch(
        &self,
        ns: &str,
        id: ExecutionId,
    ) -> Result<Box<dyn CompletionWatch>, EngineError>;

    /// Claims up to `req.n`, waiting up to `wait` for work.
    async fn claim(&self, req: &ClaimRequest, wait: Duration) -> Result<Vec<Claimed>, EngineError>;
    async fn renew(&self, ns: &str, handle: &LeaseHandle) -> Result<Renewed, EngineError>;
    async fn release(&self, ns: &str, handle: &LeaseHandle) -> Result<(), EngineError>;
    async fn complete(
        &self,
        ns: &str,
        handle: &LeaseHandle,
        result: JsonText,
    ) -> Result<CompleteResponse, EngineError>;
    async fn fail(
        &self,
        ns: &str,
        handle: &LeaseHandle,
        failure: Failure,
    ) -> Result<FailResponse, EngineError>;
    async fn add_nodes(
        &self,
        ns: &str,
        handle: &LeaseHandle,
        nodes: Vec<NodeSpec>,
        edges: Vec<EdgeSpec>,
    ) -> Result<NodesAdded, EngineError>;

    async fn create_waitpoint(
        &self,
        ns: &str,
        handle: &LeaseHandle,
        req: &WaitpointRequest,
    ) -> Result<WaitpointGrant, EngineError>;
    async fn suspend(
        &self,
        ns: &str,
        handle: &LeaseHandle,
        req: &SuspendRequest,
    ) -> Result<SuspendResponse, EngineError>;
    /// Needs no namespace: the token names its execution.
    async fn signal_by_token(
        &self,
        token: &str,
        req: &SignalRequest,
    ) -> Result<SignalResponse, EngineError>;
    async fn signal(
        &self,
        ns: &str,
        id: ExecutionId,
        waitpoint: &str,
        req: &SignalRequest,
    ) -> Result<SignalResponse, EngineError>;

    async fn policies(&self, ns: &str) -> Result<Vec<Policy>, EngineError>;
    async fn put_policy(
        &self,
        ns: &str,
        name: &str,
        spec: &PolicySpec,
    ) -> Result<Policy, EngineError>;
    /// `NotFound` when there is no such policy.
    async fn delete_policy(&self, ns: &str, name: &str) -> Result<(), EngineError>;
    async fn budget(&self, ns: &str, name: &str) -> Result<BudgetStatus, EngineError>;
    async fn report_usage(
        &self,
        ns: &str,
        handle: &LeaseHandle,
        report: &UsageReport,
    ) -> Result<Vec<BudgetStatus>, EngineError>;

    /// Stops what the transport runs in process (the embedded engine).
    async fn shutdown(&self);
}
