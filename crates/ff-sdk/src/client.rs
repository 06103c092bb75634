//! [`Client`]: submit, read and steer executions and flows, the same API
//! whether the engine runs in this process or behind `ff serve`.

use std::sync::Arc;
use std::time::Duration;

use ff_core::cascade::FlowCancelResponse;
use ff_core::explain::Explanation;
use ff_core::flow::{FlowCreated, FlowFilter, FlowSpec, FlowSummary, FlowView};
use ff_core::flow_control::{BudgetStatus, Policy, PolicySpec};
use ff_core::suspension::{SignalRequest, SignalResponse, SignalsView};
use ff_core::{
    CancelResponse, CompletionBackend, EngineBackend, EngineError, Execution, ExecutionId, FlowId,
    JsonText, LaneStateCount, ListFilter, Outcome, Page, SubmitRequest, Submitted,
    DEFAULT_NAMESPACE,
};
use ff_engine::EngineConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::transport::{Embedded, Http, Transport};

/// The longest pause between two reads while waiting for a result.
const MAX_POLL: Duration = Duration::from_secs(1);
/// How long opening the completion watch may take before waiting polls only.
const WATCH_OPEN: Duration = Duration::from_secs(5);

/// A handle on FlowFabric, embedded or over HTTP; cheap to clone.
///
/// Every call works in the client's namespace (`default` unless
/// [`Client::with_namespace`] names another); an execution or flow of another
/// namespace is `NotFound`. Errors are [`EngineError`]s of the same kind on
/// both transports.
#[derive(Debug, Clone)]
pub struct Client {
    transport: Arc<dyn Transport>,
    namespace: String,
}

impl Client {
    /// Runs the engine in this process over `engine`, whose completion
    /// subscription is `completions` (usually the same backend twice).
    /// Starts the engine's background services on the current tokio runtime
    /// (panics outside one, like `tokio::spawn`); stop them with
    /// [`Client::shutdown`], then close the backend.
    pub fn embedded(
        engine: Arc<dyn EngineBackend>,
        completions: Arc<dyn CompletionBackend>,
    ) -> Self {
        Self::embedded_with_config(engine, completions, EngineConfig::default())
    }

    /// [`Client::embedded`] with the engine's service intervals chosen.
    pub fn embedded_with_config(
        engine: Arc<dyn EngineBackend>,
        completions: Arc<dyn CompletionBackend>,
        config: EngineConfig,
    ) -> Self {
        Self::with_transport(Arc::new(Embedded::start(engine, completions, config)))
    }

    /// Talks to `ff serve` at `base_url` (e.g. `http://127.0.0.1:7878`),
    /// sending `token` as a bearer token when given. Plain `http://` only:
    /// this build carries no TLS.
    pub fn http(base_url: impl AsRef<str>, token: Option<String>) -> Result<Self, EngineError> {
        let base = base_url.as_ref();
        if !base.starts_with("http://") {
            return Err(EngineError::invalid(
                "base_url",
                format!("`{base}` is not an http:// URL (https is not supported by this build)"),
            ));
        }
        Ok(Self::with_transport(Arc::new(Http::new(base, token)?)))
    }

    fn with_transport(transport: Arc<dyn Transport>) -> Self {
        Self {
            transport,
            namespace: DEFAULT_NAMESPACE.to_owned(),
        }
    }

    /// The same connection working in `namespace`.
    pub fn with_namespace(&self, namespace: impl Into<String>) -> Self {
        Self {
            transport: self.transport.clone(),
            namespace: namespace.into(),
        }
    }

    /// The namespace every call works in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub(crate) fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Submits one execution (to the client's namespace; a request naming
    /// another is `Invalid`). A known idempotency key answers the first id
    /// with `created: false`.
    pub async fn submit(&self, req: SubmitRequest) -> Result<Submitted, EngineError> {
        self.transport.submit(&self.namespace, req).await
    }

    /// Submits up to 1,000 executions atomically; answers in request order.
    pub async fn submit_batch(
        &self,
        reqs: Vec<SubmitRequest>,
    ) -> Result<Vec<Submitted>, EngineError> {
        self.transport.submit_batch(&self.namespace, reqs).await
    }

    /// Creates a flow and all its nodes in one step.
    pub async fn create_flow(&self, spec: FlowSpec) -> Result<FlowCreated, EngineError> {
        self.transport.create_flow(&self.namespace, spec).await
    }

    /// One execution with its attempts.
    pub async fn get_execution(&self, id: ExecutionId) -> Result<Execution, EngineError> {
        self.transport.get_execution(&self.namespace, id).await
    }

    /// A page of executions matching `filter`, in creation order. The
    /// filter's namespace is replaced by the client's.
    pub async fn list_executions(
        &self,
        mut filter: ListFilter,
    ) -> Result<Page<Execution>, EngineError> {
        filter.namespace.clone_from(&self.namespace);
        self.transport.list_executions(&filter).await
    }

    /// A flow with its nodes (and their states), edges and derived state.
    pub async fn get_flow(&self, id: FlowId) -> Result<FlowView, EngineError> {
        self.transport.get_flow(&self.namespace, id).await
    }

    /// A page of flows, in creation order; the namespace is the client's.
    pub async fn list_flows(
        &self,
        mut filter: FlowFilter,
    ) -> Result<Page<FlowSummary>, EngineError> {
        filter.namespace.clone_from(&self.namespace);
        self.transport.list_flows(&filter).await
    }

    /// Cancels an execution; on a terminal one, reports its outcome
    /// (`changed: false`). A running one's worker learns it at its next
    /// renewal and its handler is stopped.
    pub async fn cancel(&self, id: ExecutionId) -> Result<CancelResponse, EngineError> {
        self.transport.cancel(&self.namespace, id).await
    }

    /// Cancels a flow and every unfinished node in one step.
    pub async fn cancel_flow(&self, id: FlowId) -> Result<FlowCancelResponse, EngineError> {
        self.transport.cancel_flow(&self.namespace, id).await
    }

    /// Gives a failed solo execution one more attempt (`Conflict` on a flow
    /// node or a non-failed execution).
    pub async fn requeue(&self, id: ExecutionId) -> Result<(), EngineError> {
        self.transport.requeue(&self.namespace, id).await
    }

    /// Delivers a signal with a waitpoint token (what an outside party
    /// holds); a repeated idempotency key answers `duplicate: true`.
    pub async fn signal(
        &self,
        token: &str,
        req: &SignalRequest,
    ) -> Result<SignalResponse, EngineError> {
        self.transport.signal_by_token(token, req).await
    }

    /// Delivers a signal to waitpoint `key` of execution `id` (an
    /// operator's call, in the client's namespace).
    pub async fn signal_waitpoint(
        &self,
        id: ExecutionId,
        key: &str,
        req: &SignalRequest,
    ) -> Result<SignalResponse, EngineError> {
        self.transport.signal(&self.namespace, id, key, req).await
    }

    /// An execution's waitpoints, signals and suspensions.
    pub async fn signals(&self, id: ExecutionId) -> Result<SignalsView, EngineError> {
        let wait = self.get_execution(id).await?.wait.unwrap_or_default();
        Ok(SignalsView {
            waitpoints: wait.waitpoints,
            signals: wait.signals,
            suspensions: wait.suspensions,
        })
    }

    /// What holds an execution that is not running: its `run_at`, a retry
    /// backoff, unfinished parents, a suspension, or its place in the lane.
    pub async fn why(&self, id: ExecutionId) -> Result<Explanation, EngineError> {
        self.transport.why(&self.namespace, id).await
    }

    /// The namespace's flow-control policies, by name.
    pub async fn policies(&self) -> Result<Vec<Policy>, EngineError> {
        self.transport.policies(&self.namespace).await
    }

    /// Creates policy `name` or replaces its spec; the next claim applies it.
    pub async fn put_policy(&self, name: &str, spec: &PolicySpec) -> Result<Policy, EngineError> {
        self.transport.put_policy(&self.namespace, name, spec).await
    }

    /// Removes policy `name`; `NotFound` when there is none.
    pub async fn delete_policy(&self, name: &str) -> Result<(), EngineError> {
        self.transport.delete_policy(&self.namespace, name).await
    }

    /// Budget policy `name` as it stands: usage, what remains, any breach.
    pub async fn budget(&self, name: &str) -> Result<BudgetStatus, EngineError> {
        self.transport.budget(&self.namespace, name).await
    }

    /// How many executions each lane holds in each state (non-zero only).
    pub async fn counts(&self) -> Result<Vec<LaneStateCount>, EngineError> {
        self.transport.counts(&self.namespace).await
    }

    /// Waits until the execution is terminal and returns how it ended, or
    /// `None` when `timeout` passes first. Listens for its completion (the
    /// completion stream embedded, the execution's SSE stream over HTTP) and,
    /// since that stream is best-effort, also re-reads the execution with a
    /// backoff of up to a second.
    pub async fn wait_for_result(
        &self,
        id: ExecutionId,
        timeout: Duration,
    ) -> Result<Option<ExecutionResult>, EngineError> {
        let deadline = Instant::now() + timeout;
        let opening = tokio::time::timeout(
            timeout.min(WATCH_OPEN),
            self.transport.watch(&self.namespace, id),
        );
        let mut watch = match opening.await {
            Ok(Ok(watch)) => Some(watch),
            Ok(Err(err @ EngineError::NotFound { .. })) => return Err(err),
            Ok(Err(err)) => {
                tracing::debug!(%err, "no completion stream; polling only");
                None
            }
            Err(_) => None,
        };
        let mut pause = Duration::from_millis(25);
        loop {
            let exec = self.get_execution(id).await?;
            if let Some(result) = ExecutionResult::of(&exec) {
                return Ok(Some(result));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let sleep = tokio::time::sleep(pause.min(left));
            match watch.as_mut() {
                Some(stream) => tokio::select! {
                    alive = stream.next() => if !alive { watch = None },
                    () = sleep => {}
                },
                None => sleep.await,
            }
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// Stops the engine this client runs in process (embedded); nothing
    /// over HTTP. Close the backend afterwards. Other clones of this client
    /// keep working for reads and writes, without the background services.
    pub async fn shutdown(&self) {
        self.transport.shutdown().await;
    }
}

/// How a terminal execution ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionResult {
    pub id: ExecutionId,
    pub outcome: Outcome,
    /// The last attempt.
    pub attempt: u32,
    /// The handler's result, when completed.
    pub result: Option<JsonText>,
    /// The last error recorded, when it failed (or an attempt failed before).
    pub error: Option<String>,
}

impl ExecutionResult {
    /// The result of `exec`, once it is terminal.
    pub fn of(exec: &Execution) -> Option<Self> {
        Some(Self {
            id: exec.id,
            outcome: exec.outcome()?,
            attempt: exec.attempt,
            result: exec.result.clone(),
            error: exec.error.clone(),
        })
    }

    pub fn is_completed(&self) -> bool {
        self.outcome == Outcome::Completed
    }

    /// Decodes the result (`None` when there is none).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.result
            .as_ref()
            .map(|text| serde_json::from_str(text.as_str()))
            .transpose()
    }
}
