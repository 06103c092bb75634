//! What a handler sees and returns: the [`JobContext`] of one attempt, and
//! [`HandlerError`] with its typed control values [`Retry`], [`Fail`],
//! [`Release`] and [`Suspend`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ff_core::cascade::NodesAdded;
use ff_core::flow::{EdgeSpec, Inputs, NodeSpec};
use ff_core::flow_control::{BudgetStatus, UsageReport};
use ff_core::suspension::{
    ResumeCondition, Signal, SuspendRequest, TimeoutPolicy, WaitpointGrant, WaitpointRequest,
};
use ff_core::{Claimed, EngineError, ExecutionId, FlowId, JsonText, LeaseHandle, Outcome};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use crate::Client;

/// Why the runtime asks a running handler to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The worker is shutting down; finish soon or return [`Release`].
    Shutdown,
    /// Another outcome was recorded meanwhile (cancel, deadline, flow
    /// cancel): the attempt no longer counts.
    Cancelled { outcome: Outcome },
    /// The lease was lost (expired, or taken over): the attempt no longer
    /// counts.
    LeaseLost,
}

/// One attempt of one execution, as its handler sees it.
#[derive(Debug, Clone)]
pub struct JobContext {
    claimed: Arc<Claimed>,
    client: Client,
    stop: watch::Receiver<Option<StopReason>>,
}

impl JobContext {
    pub(crate) fn new(
        claimed: Arc<Claimed>,
        client: Client,
        stop: watch::Receiver<Option<StopReason>>,
    ) -> Self {
        Self {
            claimed,
            client,
            stop,
        }
    }

    pub fn id(&self) -> ExecutionId {
        self.claimed.handle.execution_id
    }

    /// 1 for the first attempt; a released lease's next claim keeps it.
    pub fn attempt(&self) -> u32 {
        self.claimed.handle.attempt
    }

    pub fn handle(&self) -> &LeaseHandle {
        &self.claimed.handle
    }

    pub fn kind(&self) -> &str {
        &self.claimed.kind
    }

    pub fn lane(&self) -> &str {
        &self.claimed.lane
    }

    /// The whole claim: lease times, deadline, flow membership.
    pub fn claimed(&self) -> &Claimed {
        &self.claimed
    }

    /// The payload as submitted, verbatim.
    pub fn payload_json(&self) -> &JsonText {
        &self.claimed.payload
    }

    /// The payload decoded; a payload of the wrong shape fails the execution
    /// permanently, since no retry can fix it.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        serde_json::from_str(self.claimed.payload.as_str()).map_err(|e| {
            Fail::permanent(format!(
                "the payload is not a valid {}: {e}",
                std::any::type_name::<T>()
            ))
            .into()
        })
    }

    pub fn flow_id(&self) -> Option<FlowId> {
        self.claimed.flow_id
    }

    pub fn node_key(&self) -> Option<&str> {
        self.claimed.node_key.as_deref()
    }

    /// For a flow node: each parent's outcome and result or error.
    pub fn inputs(&self) -> Option<&Inputs> {
        self.claimed.inputs.as_ref()
    }

    /// A client in the execution's namespace, to submit follow-up work.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Adds nodes and edges to this node's flow (dynamic fan-out),
    /// idempotently by node key, so a retried attempt adds nothing twice.
    pub async fn add_nodes(
        &self,
        nodes: Vec<NodeSpec>,
        edges: Vec<EdgeSpec>,
    ) -> Result<NodesAdded, EngineError> {
        self.client
            .transport()
            .add_nodes(&self.claimed.namespace, &self.claimed.handle, nodes, edges)
            .await
    }

    /// Creates waitpoint `key` for this attempt (or gets the one it created
    /// already) and its token: hand the token to whoever is to signal, then
    /// return [`Suspend::on`] it. Signals that arrive first are kept.
    pub async fn waitpoint(&self, key: &str) -> Result<WaitpointGrant, EngineError> {
        self.client
            .transport()
            .create_waitpoint(
                &self.claimed.namespace,
                &self.claimed.handle,
                &WaitpointRequest::new(key),
            )
            .await
    }

    /// Reports what this attempt spent, e.g. `[("tokens", 1200),
    /// ("usd_cents", 3)]`, against every budget of the execution's fairness
    /// key; a repeat with the same `dedup_key` counts once. The budgets as
    /// they now stand (a hard breach holds the scope's next claims).
    pub async fn report_usage<K: Into<String>>(
        &self,
        dedup_key: &str,
        amounts: impl IntoIterator<Item = (K, u64)>,
    ) -> Result<Vec<BudgetStatus>, EngineError> {
        let report = UsageReport {
            dedup_key: dedup_key.to_owned(),
            amounts: amounts.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        };
        self.client
            .transport()
            .report_usage(&self.claimed.namespace, &self.claimed.handle, &report)
            .await
    }

    /// After a resume: the signals that satisfied the suspension (name,
    /// payload, source, time), in arrival order; empty otherwise.
    pub fn signals(&self) -> &[Signal] {
        &self.claimed.signals
    }

    /// The first of [`JobContext::signals`] delivered to `waitpoint`.
    pub fn signal(&self, waitpoint: &str) -> Option<&Signal> {
        self.claimed
            .signals
            .iter()
            .find(|s| s.waitpoint.as_deref() == Some(waitpoint))
    }

    /// Why the runtime asked this handler to stop, if it has.
    pub fn stop_reason(&self) -> Option<StopReason> {
        *self.stop.borrow()
    }

    /// Resolves when the runtime asks this handler to stop: a shutdown (the
    /// handler may finish or return [`Release`]), or the attempt no longer
    /// counting (cancelled, lease lost). Select on it beside long work. A
    /// handler that ignores it is aborted when the shutdown grace ends, or at
    /// once (after the worker's cancel grace) when cancelled.
    pub async fn stopped(&self) -> StopReason {
        let mut stop = self.stop.clone();
        let reason = match stop.wait_for(Option::is_some).await {
            Ok(reason) => reason.unwrap_or(StopReason::Shutdown),
            // The runtime is gone: nothing will report this attempt.
            Err(_) => StopReason::LeaseLost,
        };
        reason
    }
}

/// How a handler ends without a result.
///
/// - [`Retry`]: a retryable failure (also what any plain error converted with
///   `?` is): the execution's retry policy schedules the next attempt.
/// - [`Fail`]: a permanent failure, whatever attempts are left.
/// - [`Release`]: hand the execution back without using up the attempt.
/// - [`Suspend`]: wait for signals; the same attempt runs again, with
///   them in [`JobContext::signals`].
///
/// Deliberately not a `std::error::Error`, so that `?` converts every error
/// type into it.
pub struct HandlerError(pub(crate) Control);

pub(crate) enum Control {
    Retry(Retry),
    Fail(Fail),
    Release,
    Suspend(Suspend),
    Error(Box<dyn std::error::Error + Send + Sync>),
}

impl HandlerError {
    /// A retryable failure with a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Retry::new(message).into()
    }

    /// Whether the execution may be retried after this.
    pub fn is_retryable(&self) -> bool {
        !matches!(self.0, Control::Fail(_))
    }

    /// The text recorded as the attempt's error.
    pub(crate) fn error_text(&self) -> String {
        match &self.0 {
            Control::Retry(retry) => retry.reason.clone(),
            Control::Fail(fail) => fail.error.clone(),
            Control::Release => "released".to_owned(),
            Control::Suspend(suspend) => format!("suspended ({})", suspend.req.key),
            Control::Error(err) => error_chain(err.as_ref()),
        }
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Control::Retry(retry) => retry.fmt(f),
            Control::Fail(fail) => fail.fmt(f),
            Control::Release => f.write_str("Release"),
            Control::Suspend(suspend) => suspend.fmt(f),
            Control::Error(err) => write!(f, "Error({err:?})"),
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.error_text())
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(err: E) -> Self {
        Self(Control::Error(Box::new(err)))
    }
}

/// An error and its sources on one line.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Fail this attempt retryably.
///
/// The backoff before the next attempt is the execution's retry policy
/// (set at submit, the same on every backend): [`Retry::after`] records the
/// handler's wish in the error text and the worker's log, but it does not
/// move the retry time. Submit with a `RetryPolicy` whose backoff fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    after: Option<Duration>,
    pub(crate) reason: String,
}

impl Retry {
    /// Retry, with `after` as a hint (see the type's note).
    pub fn after(after: Duration) -> Self {
        Self {
            after: Some(after),
            reason: format!("retry requested after {after:?}"),
        }
    }

    /// Retry when the policy says, with this reason.
    pub fn new(reason: impl fmt::Display) -> Self {
        Self {
            after: None,
            reason: reason.to_string(),
        }
    }

    /// Sets the reason recorded as the attempt's error.
    pub fn because(mut self, reason: impl fmt::Display) -> Self {
        self.reason = match self.after {
            Some(after) => format!("{reason} (retry requested after {after:?})"),
            None => reason.to_string(),
        };
        self
    }

    /// The delay the handler asked for, if any.
    pub fn requested_delay(&self) -> Option<Duration> {
        self.after
    }
}

impl From<Retry> for HandlerError {
    fn from(retry: Retry) -> Self {
        Self(Control::Retry(retry))
    }
}

/// Fail the execution for good, whatever attempts are left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    pub(crate) error: String,
}

impl Fail {
    pub fn permanent(error: impl fmt::Display) -> Self {
        Self {
            error: error.to_string(),
        }
    }
}

impl From<Fail> for HandlerError {
    fn from(fail: Fail) -> Self {
        Self(Control::Fail(fail))
    }
}

/// Hand the execution back to its lane without using up the attempt (at
/// most 10 times per execution), e.g. when asked to stop mid-work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release;

impl From<Release> for HandlerError {
    fn from(_: Release) -> Self {
        Self(Control::Release)
    }
}

/// Suspend this attempt until signals arrive at its waitpoints: the lease
/// is released at once and the execution waits, using no worker; when the
/// condition is met the same attempt is claimed again (a new lease) and the
/// handler runs from the top with the signals in [`JobContext::signals`].
/// Handlers are re-run, not resumed mid-function: check `signals()` first.
///
/// When signals delivered already satisfy the condition, the handler is
/// run again at once under the same lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspend {
    pub(crate) req: SuspendRequest,
}

impl Suspend {
    /// Waits on `waitpoints` (created now if the handler has not) until any
    /// is signalled. The suspension key, which makes a repeated report
    /// idempotent, defaults to the waitpoints joined by `+`.
    pub fn on<S: Into<String>>(waitpoints: impl IntoIterator<Item = S>) -> Self {
        let waitpoints: Vec<String> = waitpoints.into_iter().map(Into::into).collect();
        let key = waitpoints.join("+");
        Self {
            req: SuspendRequest::on(key, waitpoints),
        }
    }

    /// Waits until every waitpoint is signalled.
    pub fn all(mut self) -> Self {
        self.req.condition = ResumeCondition::All;
        self
    }

    /// Waits for `n` signals; with `distinct`, to `n` different waitpoints.
    pub fn count(mut self, n: u32, distinct: bool) -> Self {
        self.req.condition = ResumeCondition::Count { n, distinct };
        self
    }

    /// Applies `policy` if no signal satisfies it within `timeout`.
    pub fn timeout(mut self, timeout: Duration, policy: TimeoutPolicy) -> Self {
        self.req.timeout_ms = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        self.req.on_timeout = policy;
        self
    }

    /// Sets the suspension key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.req.key = key.into();
        self
    }

    /// The request the runtime sends.
    pub fn request(&self) -> &SuspendRequest {
        &self.req
    }
}

impl From<Suspend> for HandlerError {
    fn from(suspend: Suspend) -> Self {
        Self(Control::Suspend(suspend))
    }
}

/// A handler, its result type erased to JSON text.
pub(crate) type BoxHandler =
    Arc<dyn Fn(JobContext) -> BoxFuture<'static, Result<JsonText, HandlerError>> + Send + Sync>;

/// Erases `f`'s result type: a result that does not serialize fails the
/// execution permanently.
pub(crate) fn boxed<F, Fut, R>(f: F) -> BoxHandler
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
    R: Serialize + Send + 'static,
{
    Arc::new(move |ctx| {
        let fut = f(ctx);
        Box::pin(async move {
            let value = fut.await?;
            serde_json::to_string(&value)
                .map(JsonText::unchecked)
                .map_err(|e| Fail::permanent(format!("the result does not serialize: {e}")).into())
        })
    })
}
