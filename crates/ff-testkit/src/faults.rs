//! Fault injection as wrappers, never as test-only code inside a backend:
//! [`DroppingCompletions`] loses chosen completion events on their way to a
//! subscriber; [`CrashingBackend`] lets `k` writes through and then fails
//! every call, as if the process had died right after the k-th commit.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ff_core::cascade::{CascadeReport, FlowCancelResponse, NodesAdded};
use ff_core::flow::{EdgeSpec, FlowCreated, FlowFilter, FlowSpec, FlowSummary, FlowView, NodeSpec};
use ff_core::{
    BackendDescription, CancelResponse, ClaimRequest, Claimed, CompleteResponse, CompletionBackend,
    CompletionPayload, CompletionStream, EngineBackend, EngineError, Execution, ExecutionId,
    ExecutionOps, FailResponse, Failure, FlowId, FlowOps, JsonText, LaneStateCount, LeaseHandle,
    LeaseOps, ListFilter, MaintenanceOps, Page, ReadOps, Renewed, SubmitRequest, Submitted,
};
use futures::StreamExt;

type DropRule = dyn Fn(&CompletionPayload) -> bool + Send + Sync;

/// A [`CompletionBackend`] that silently drops every event `drop_if` selects.
pub struct DroppingCompletions {
    inner: Arc<dyn CompletionBackend>,
    drop_if: Arc<DropRule>,
    dropped: Arc<AtomicU64>,
}

impl DroppingCompletions {
    pub fn new(
        inner: Arc<dyn CompletionBackend>,
        drop_if: impl Fn(&CompletionPayload) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner,
            drop_if: Arc::new(drop_if),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Drops every event.
    pub fn all(inner: Arc<dyn CompletionBackend>) -> Self {
        Self::new(inner, |_| true)
    }

    /// How many events were dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for DroppingCompletions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DroppingCompletions")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl CompletionBackend for DroppingCompletions {
    async fn subscribe_completions(&self) -> Result<CompletionStream, EngineError> {
        let stream = self.inner.subscribe_completions().await?;
        let drop_if = Arc::clone(&self.drop_if);
        let dropped = Arc::clone(&self.dropped);
        let filtered = stream.filter(move |payload| {
            let keep = !drop_if(payload);
            if !keep {
                dropped.fetch_add(1, Ordering::SeqCst);
            }
            futures::future::ready(keep)
        });
        Ok(Box::pin(filtered.boxed()))
    }
}

/// An [`EngineBackend`] that lets `k` writes through, then answers every
/// call — reads included — with `Unavailable`, like a process that died
/// right after its k-th commit. Restart by opening the real backend again.
pub struct CrashingBackend {
    inner: Arc<dyn EngineBackend>,
    writes_left: AtomicU64,
}

impl CrashingBackend {
    pub fn new(inner: Arc<dyn EngineBackend>, crash_after_writes: u64) -> Self {
        Self {
            inner,
            writes_left: AtomicU64::new(crash_after_writes),
        }
    }

    /// Whether the crash has happened.
    pub fn crashed(&self) -> bool {
        self.writes_left.load(Ordering::SeqCst) == 0
    }

    fn read(&self) -> Result<&dyn EngineBackend, EngineError> {
        if self.crashed() {
            return Err(crashed());
        }
        Ok(&*self.inner)
    }

    fn write(&self) -> Result<&dyn EngineBackend, EngineError> {
        self.writes_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .map_err(|_| crashed())?;
        Ok(&*self.inner)
    }
}

fn crashed() -> EngineError {
    EngineError::Unavailable {
        message: "injected crash".to_owned(),
    }
}

impl fmt::Debug for CrashingBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrashingBackend")
            .field("writes_left", &self.writes_left)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ExecutionOps for CrashingBackend {
    async fn submit(&self, req: SubmitRequest) -> Result<Submitted, EngineError> {
        self.write()?.submit(req).await
    }
    async fn submit_batch(&self, reqs: Vec<SubmitRequest>) -> Result<Vec<Submitted>, EngineError> {
        self.write()?.submit_batch(reqs).await
    }
    async fn cancel(&self, id: ExecutionId) -> Result<CancelResponse, EngineError> {
        self.write()?.cancel(id).await
    }
    async fn requeue(&self, id: ExecutionId) -> Result<(), EngineError> {
        self.write()?.requeue(id).await
    }
}

#[async_trait]
impl LeaseOps for CrashingBackend {
    async fn claim(&self, req: &ClaimRequest) -> Result<Vec<Claimed>, EngineError> {
        self.write()?.claim(req).await
    }
    async fn claim_wait(
        &self,
        req: &ClaimRequest,
        timeout: Duration,
    ) -> Result<Vec<Claimed>, EngineError> {
        self.write()?.claim_wait(req, timeout).await
    }
    async fn renew(&self, handle: &LeaseHandle) -> Result<Renewed, EngineError> {
        self.write()?.renew(handle).await
    }
    async fn release(&self, handle: &LeaseHandle) -> Result<(), EngineError> {
        self.write()?.release(handle).await
    }
    async fn complete(
        &self,
        handle: &LeaseHandle,
        result: JsonText,
    ) -> Result<CompleteResponse, EngineError> {
        self.write()?.complete(handle, result).await
    }
    async fn fail(
        &self,
        handle: &LeaseHandle,
        failure: Failure,
    ) -> Result<FailResponse, EngineError> {
        self.write()?.fail(handle, failure).await
    }
}

#[async_trait]
impl FlowOps for CrashingBackend {
    async fn create_flow(&self, spec: FlowSpec) -> Result<FlowCreated, EngineError> {
        self.write()?.create_flow(spec).await
    }
    async fn add_nodes(
        &self,
        handle: &LeaseHandle,
        nodes: Vec<NodeSpec>,
        edges: Vec<EdgeSpec>,
    ) -> Result<NodesAdded, EngineError> {
        self.write()?.add_nodes(handle, nodes, edges).await
    }
    async fn cancel_flow(&self, id: FlowId) -> Result<FlowCancelResponse, EngineError> {
        self.write()?.cancel_flow(id).await
    }
    async fn cascade_completion(
        &self,
        payload: &CompletionPayload,
    ) -> Result<CascadeReport, EngineError> {
        self.write()?.cascade_completion(payload).await
    }
    async fn cascade_completions(
        &self,
        payloads: &[CompletionPayload],
    ) -> Result<Vec<Result<CascadeReport, EngineError>>, EngineError> {
        self.write()?.cascade_completions(payloads).await
    }
}

#[async_trait]
impl MaintenanceOps for CrashingBackend {
    async fn expire_leases(&self, limit: u32) -> Result<u32, EngineError> {
        self.write()?.expire_leases(limit).await
    }
    async fn promote_scheduled(&self, limit: u32) -> Result<u32, EngineError> {
        self.write()?.promote_scheduled(limit).await
    }
    async fn expire_deadlines(&self, limit: u32) -> Result<u32, EngineError> {
        self.write()?.expire_deadlines(limit).await
    }
    async fn undispatched_completions(
        &self,
        older_than_ms: u64,
        limit: u32,
    ) -> Result<Vec<CompletionPayload>, EngineError> {
        self.read()?
            .undispatched_completions(older_than_ms, limit)
            .await
    }
    async fn reconcile_blocked(&self, older_than_ms: u64, limit: u32) -> Result<u32, EngineError> {
        self.write()?.reconcile_blocked(older_than_ms, limit).await
    }
    async fn trim_outbox(&self, older_than_ms: u64, limit: u32) -> Result<u32, EngineError> {
        self.write()?.trim_outbox(older_than_ms, limit).await
    }
}

#[async_trait]
impl ReadOps for CrashingBackend {
    async fn get_execution(&self, id: ExecutionId) -> Result<Execution, EngineError> {
        self.read()?.get_execution(id).await
    }
    async fn list_executions(&self, filter: &ListFilter) -> Result<Page<Execution>, EngineError> {
        self.read()?.list_executions(filter).await
    }
    async fn count_by_lane_and_state(
        &self,
        namespace: &str,
    ) -> Result<Vec<LaneStateCount>, EngineError> {
        self.read()?.count_by_lane_and_state(namespace).await
    }
    async fn get_flow(&self, id: FlowId) -> Result<FlowView, EngineError> {
        self.read()?.get_flow(id).await
    }
    async fn list_flows(&self, filter: &FlowFilter) -> Result<Page<FlowSummary>, EngineError> {
        self.read()?.list_flows(filter).await
    }
    async fn describe(&self) -> Result<BackendDescription, EngineError> {
        self.read()?.describe().await
    }
}
