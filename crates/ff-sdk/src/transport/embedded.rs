//! The embedded transport: the backend's traits called in process, with the
//! engine's background services running beside them.

use std::sync::{Arc, Mutex};
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
    CancelResponse, ClaimRequest, Claimed, CompleteResponse, CompletionBackend, CompletionStream,
    EngineBackend, EngineError, Execution, ExecutionId, FailResponse, Failure, FlowId, JsonText,
    LaneStateCount, LeaseHandle, ListFilter, Page, Renewed, SubmitRequest, Submitted,
};
use ff_engine::{Engine, EngineConfig};
use futures::StreamExt;

use super::{CompletionWatch, Transport};

pub(crate) struct Embedded {
    backend: Arc<dyn EngineBackend>,
    completions: Arc<dyn CompletionBackend>,
    /// Taken by `shutdown`.
    engine: Mutex<Option<Engine>>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Embedded {
    /// Starts the engine's services on the current tokio runtime.
    pub(crate) fn start(
        backend: Arc<dyn EngineBackend>,
        completions: Arc<dyn CompletionBackend>,
        config: EngineConfig,
    ) -> Self {
        let engine = Engine::start(backend.clone(), completions.clone(), config);
        Self {
            backend,
            completions,
            engine: Mutex::new(Some(engine)),
        }
    }

    async fn load(&self, ns: &str, id: ExecutionId) -> Result<Execution, EngineError> {
        let exec = self.backend.get_execution(id).await?;
        if exec.namespace != ns {
            return Err(EngineError::execution_not_found(id));
        }
        Ok(exec)
    }
}

/// The HTTP API's rule, kept here too: a request naming another namespace
/// than the one it is sent to is refused.
fn namespaced(mut req: SubmitRequest, ns: &str, field: &str) -> Result<SubmitRequest, EngineError> {
    if req.namespace.as_deref().is_some_and(|n| n != ns) {
        return Err(EngineError::invalid(
            field,
            "must match the client's namespace",
        ));
    }
    req.namespace = Some(ns.to_owned());
    Ok(req)
}

fn flow_not_found(id: FlowId) -> EngineError {
    EngineError::NotFound {
        entity: "flow",
        id: id.to_string(),
    }
}

#[async_trait]
impl Transport for Embedded {
    async fn submit(&self, ns: &str, req: SubmitRequest) -> Result<Submitted, EngineError> {
        self.backend.submit(namespaced(req, ns, "namespace")?).await
    }

    async fn submit_batch(
        &self,
        ns: &str,
        reqs: Vec<SubmitRequest>,
    ) -> Result<Vec<Submitted>, EngineError> {
        let reqs = reqs
            .into_iter()
            .enumerate()
            .map(|(i, req)| namespaced(req, ns, &format!("requests[{i}].namespace")))
            .collect::<Result<Vec<_>, _>>()?;
        self.backend.submit_batch(reqs).await
    }

    async fn create_flow(&self, ns: &str, mut spec: FlowSpec) -> Result<FlowCreated, EngineError> {
        if spec.namespace.as_deref().is_some_and(|n| n != ns) {
            return Err(EngineError::invalid(
                "namespace",
                "must match the client's namespace",
            ));
        }
        spec.namespace = Some(ns.to_owned());
        self.backend.create_flow(spec).await
    }

    async fn get_execution(&self, ns: &str, id: ExecutionId) -> Result<Execution, EngineError> {
        self.load(ns, id).await
    }

    async fn list_executions(&self, filter: &ListFilter) -> Result<Page<Execution>, EngineError> {
        self.backend.list_executions(filter).await
    }

    async fn get_flow(&self, ns: &str, id: FlowId) -> Result<FlowView, EngineError> {
        let flow = self.backend.get_flow(id).await?;
        if flow.namespace != ns {
            return Err(flow_not_found(id));
        }
        Ok(flow)
    }

    async fn list_flows(&self, filter: &FlowFilter) -> Result<Page<FlowSummary>, EngineError> {
        self.backend.list_flows(filter).await
    }

    async fn counts(&self, ns: &str) -> Result<Vec<LaneStateCount>, EngineError> {
        self.backend.count_by_lane_and_state(ns).await
    }

    async fn why(&self, ns: &str, id: ExecutionId) -> Result<Explanation, EngineError> {
        ff_core::explain::why(&*self.backend, ns, id).await
    }

    async fn cancel(&self, ns: &str, id: ExecutionId) -> Result<CancelResponse, EngineError> {
        self.load(ns, id).await?;
        self.backend.cancel(id).await
    }

    async fn cancel_flow(&self, ns: &str, id: FlowId) -> Result<FlowCancelResponse, EngineError> {
        self.get_flow(ns, id).await?;
        self.backend.cancel_flow(id).await
    }

    async fn requeue(&self, ns: &str, id: ExecutionId) -> Result<(), EngineError> {
        self.load(ns, id).await?;
        self.backend.requeue(id).await
    }

    async fn watch(
        &self,
        _ns: &str,
        id: ExecutionId,
    ) -> Result<Box<dyn CompletionWatch>, EngineError> {
        let stream = self.completions.subscribe_completions().await?;
        Ok(Box::new(StreamWatch { stream, id }))
    }

    async fn claim(&self, req: &ClaimRequest, wait: Duration) -> Result<Vec<Claimed>, EngineError> {
        self.backend.claim_wait(req, wait).await
    }

    async fn renew(&self, ns: &str, handle: &LeaseHandle) -> Result<Renewed, EngineError> {
        self.backend.renew(handle.in_namespace(ns)?).await
    }

    async fn release(&self, ns: &str, handle: &LeaseHandle) -> Result<(), EngineError> {
        self.backend.release(handle.in_namespace(ns)?).await
    }

    async fn complete(
        &self,
        ns: &str,
        handle: &LeaseHandle,
        result: JsonText,
    ) -> Result<CompleteResponse, EngineError> {
        self.backend
            .complete(handle.in_namespace(ns)?, result)
            .await
    }

    async fn fail(
        &self,
        ns: &str,
        handle: &LeaseHandle,
        failure: Failure,
    ) -> Result<FailResponse, EngineError> {
        self.backend.fail(handle.in_namespace(ns)?, failure).await
    }

    async fn add_nodes(
        &self,
        ns: &str,
        handle: &LeaseHandle,
        nodes: Vec<NodeSpec>,
        edges: Vec<EdgeSpec>,
    ) -> Result<NodesAdded, EngineError> {
        self.backend
            .add_nodes(handle.in_namespace(ns)?, nodes, edges)
            .await
    }

    async fn create_waitpoint(
        &self,
        ns: &str,
        handle: &LeaseHandle,
        req: &WaitpointRequest,
    ) -> Result<WaitpointGrant, EngineError> {
        self.backend
            .create_waitpoint(handle.in_namespace(ns)?, req)
            .await
    }

    async fn suspend(
        &self,
        ns: &str,
        handle: &LeaseHandle,
        req: &SuspendRequest,
    ) -> Result<SuspendResponse, EngineError> {
        self.backend.suspend(handle.in_namespace(ns)?, req).await
    }

    async fn signal_by_token(
        &self,
        token: &str,
        req: &SignalRequest,
    ) -> Result<SignalResponse, EngineError> {
        self.backend.signal_by_token(token, req).await
    }

    async fn signal(
        &self,
        ns: &str,
        id: ExecutionId,
        waitpoint: &str,
        req: &SignalRequest,
    ) -> Result<SignalResponse, EngineError> {
        self.backend.signal(ns, id, waitpoint, req).await
    }

    async fn policies(&self, ns: &str) -> Result<Vec<Policy>, EngineError> {
        self.backend.policies(ns).await
    }

    async fn put_policy(
        &self,
        ns: &str,
        name: &str,
        spec: &PolicySpec,
    ) -> Result<Policy, EngineError> {
        self.backend.put_policy(ns, name, spec.clone()).await
    }

    async fn delete_policy(&self, ns: &str, name: &str) -> Result<(), EngineError> {
        if self.backend.delete_policy(ns, name).await? {
            Ok(())
        } else {
            Err(EngineError::NotFound {
                entity: "policy",
                id: name.to_owned(),
            })
        }
    }

    async fn budget(&self, ns: &str, name: &str) -> Result<BudgetStatus, EngineError> {
        self.backend.budget(ns, name).await
    }

    async fn report_usage(
        &self,
        ns: &str,
        handle: &LeaseHandle,
        report: &UsageReport,
    ) -> Result<Vec<BudgetStatus>, EngineError> {
        self.backend
            .report_usage(handle.in_namespace(ns)?, report)
            .await
    }

    async fn shutdown(&self) {
        let engine = self
            .engine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(engine) = engine {
            engine.shutdown().await;
        }
    }
}

/// Wakes on the completion payloads of one execution.
struct StreamWatch {
    stream: CompletionStream,
    id: ExecutionId,
}

#[async_trait]
impl CompletionWatch for StreamWatch {
    async fn next(&mut self) -> bool {
        while let Some(payload) = self.stream.next().await {
            if payload.execution_id == self.id {
                return true;
            }
        }
        false
    }
}
