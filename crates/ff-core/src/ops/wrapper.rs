//! Backend wrappers: a type that stands in front of a backend and sees every
//! call (instrumentation, fault injection). [`crate::wrap_backend!`] writes
//! the backend traits' impls for it, each method forwarding one [`Call`]
//! through [`BackendWrapper`], so a wrapper writes only what it does around
//! a call. A trait method added later must be added to the macro too: a
//! required one fails the build until it is, but one with a default body
//! would silently run the default instead of the inner backend's.

use futures::future::BoxFuture;

use crate::error::EngineError;
use crate::ids::{ExecutionId, FlowId};

use super::EngineBackend;

/// One forwarded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// The trait method, e.g. `"claim"`.
    pub op: &'static str,
    /// Whether the call may change what is stored (reads do not).
    pub writes: bool,
    /// The execution the call is about, when it names one.
    pub execution: Option<ExecutionId>,
    /// The flow the call is about, when it names one.
    pub flow: Option<FlowId>,
}

/// What a wrapper does with each call [`crate::wrap_backend!`] forwards.
pub trait BackendWrapper: Send + Sync {
    /// The backend `call` goes to, or the error it answers with instead.
    fn target(&self, call: Call) -> Result<&dyn EngineBackend, EngineError>;

    /// Runs the forwarded call; by default just that.
    fn around<'a, T: Send + 'a>(
        &'a self,
        call: Call,
        run: BoxFuture<'a, Result<T, EngineError>>,
    ) -> BoxFuture<'a, Result<T, EngineError>> {
        let _ = call;
        run
    }
}

/// Forwards one call of a [`BackendWrapper`]: `__forward!(self, writes,
/// Trait::method(args...))`, optionally followed by `, execution, flow`
/// (the `Option`s the call names).
#[doc(hidden)]
#[macro_export]
macro_rules! __forward {
    ($self:ident, $writes:expr, $tr:ident :: $op:ident ( $($arg:expr),* )) => {
        $crate::__forward!($self, $writes, $tr::$op($($arg),*), None, None)
    };
    ($self:ident, $writes:expr, $tr:ident :: $op:ident ( $($arg:expr),* ),
     $execution:expr, $flow:expr) => {{
        let call = $crate::ops::Call {
            op: stringify!($op),
            writes: $writes,
            execution: $execution,
            flow: $flow,
        };
        let target = $crate::ops::BackendWrapper::target($self, call)?;
        let run = ::std::boxed::Box::pin($crate::ops::$tr::$op(target, $($arg),*));
        $crate::ops::BackendWrapper::around($self, call, run).await
    }};
}

/// Implements the backend traits ([`crate::EngineBackend`]) for `$ty`, a
/// [`BackendWrapper`], each method forwarding to its target.
#[macro_export]
macro_rules! wrap_backend {
    ($ty:ty) => {
        #[$crate::ops::__async_trait]
        impl $crate::ops::ExecutionOps for $ty {
            async fn submit(
                &self,
                req: $crate::SubmitRequest,
            ) -> Result<$crate::Submitted, $crate::EngineError> {
                $crate::__forward!(self, true, ExecutionOps::submit(req))
            }
            async fn submit_batch(
                &self,
                reqs: Vec<$crate::SubmitRequest>,
            ) -> Result<Vec<$crate::Submitted>, $crate::EngineError> {
                $crate::__forward!(self, true, ExecutionOps::submit_batch(reqs))
            }
            async fn cancel(
                &self,
                id: $crate::ExecutionId,
            ) -> Result<$crate::CancelResponse, $crate::EngineError> {
                $crate::__forward!(self, true, ExecutionOps::cancel(id), Some(id), None)
            }
            async fn requeue(&self, id: $crate::ExecutionId) -> Result<(), $crate::EngineError> {
                $crate::__forward!(self, true, ExecutionOps::requeue(id), Some(id), None)
            }
        }

        #[$crate::ops::__async_trait]
        impl $crate::ops::LeaseOps for $ty {
            async fn claim(
                &self,
                req: &$crate::lease::ClaimRequest,
            ) -> Result<Vec<$crate::lease::Claimed>, $crate::EngineError> {
                $crate::__forward!(self, true, LeaseOps::claim(req))
            }
            async fn claim_wait(
                &self,
                req: &$crate::lease::ClaimRequest,
                timeout: ::std::time::Duration,
            ) -> Result<Vec<$crate::lease::Claimed>, $crate::EngineError> {
                $crate::__forward!(self, true, LeaseOps::claim_wait(req, timeout))
            }
            async fn renew(
                &self,
                handle: &$crate::lease::LeaseHandle,
            ) -> Result<$crate::lease::Renewed, $crate::EngineError> {
                $crate::__forward!(
                    self,
                    true,
                    LeaseOps::renew(handle),
                    Some(handle.execution_id),
                    None
                )
            }
            async fn release(
                &self,
                handle: &$crate::lease::LeaseHandle,
            ) -> Result<(), $crate::EngineError> {
                $crate::__forward!(
                    self,
                    true,
                    LeaseOps::release(handle),
                    Some(handle.execution_id),
                    None
                )
            }
            async fn complete(
                &self,
                handle: &$crate::lease::LeaseHandle,
                result: $crate::JsonText,
            ) -> Result<$crate::lease::CompleteResponse, $crate::EngineError> {
                $crate::__forward!(
                    self,
                    true,
                    LeaseOps::complete(handle, result),
                    Some(handle.execution_id),
                    None
                )
            }
            async fn fail(
                &self,
                handle: &$crate::lease::LeaseHandle,
                failure: $crate::lease::Failure,
            ) -> Result<$crate::lease::FailResponse, $crate::EngineError> {
                $crate::__forward!(
                    self,
                    true,
                    LeaseOps::fail(handle, failure),
                    Some(handle.execution_id),
                    None
                )
            }
        }

        #[$crate::ops::__async_trait]
        impl $crate::ops::FlowControlOps for $ty {
            async fn put_policy(
                &self,
                namespace: &str,
                name: &str,
                spec: $crate::flow_control::PolicySpec,
            ) -> Result<$crate::flow_control::Policy, $crate::EngineError> {
                $crate::__forward!(
                    self,
                    true,
                    FlowControlOps::put_policy(namespace, name, spec)
                )
            }
            async fn delete_policy(
                &self,
                namespace: &str,
                name: &str,
            ) -> Result<bool, $crate::EngineError> {
                $crate::__forward!(self, true, FlowControlOps::delete_policy(namespace, name))
            }
            async fn policies(
                &self,
                namespace: &str,
            ) -> Result<Vec<$crate::flow_control::Policy>, $crate::EngineError> {
                $crate::__forward!(self, false, FlowControlOps::policies(namespace))
            }
            async fn report_usage(
                &self,
                handle: &$crate::lease::LeaseHandle,
                report: &$crate::flow_control::UsageReport,
            ) -> Result<Vec<$crate::flow_control::BudgetStatus>, $crate::EngineError> {
                $crate::__forward!(
                    self,
                    true,
                    FlowControlOps::report_usage(handle, report),
                    Some(handle.execution_id),
                    None
                )
            }
            async fn budget(
                &self,
                namespace: &str,
                name: &str,
            ) -> Result<$crate::flow_control::BudgetStatus, $crate::EngineError> {
                $crate::__forward!(self, false, FlowControlOps::budget(namespace, name))
            }
            async fn held(
                &self,
                exec: &$crate::Execution,
            ) -> Result<Option<$crate::flow_control::Held>, $crate::EngineError> {
                $crate::__forward!(self, false, FlowControlOps::held(exec), Some(exec.id), None)
            }
            async fn concurrency_running(
                &self,
                namespace: &str,
                key: &str,
            ) -> Result<u32, $crate::EngineError> {
                $crate::__forward!(
                    self,
                    false,
                    FlowControlOps::concurrency_running(namespace, key)
                )
            }
            fn passed_over(&self) -> $crate::flow_control::PassedOverCounts {
                let call = $crate::ops::Call {
                    op: "passed_over",
                    writes: false,
                    execution: None,
                    flow: None,
                };
                $crate::ops::BackendWrapper::target(self, call)
                    .map(|backend| backend.passed_over())
                    .unwrap_or_default()
            }
        }

        #[$crate::ops::__async_trait]
        impl $crate::ops::SignalOps for $ty {
            async fn create_waitpoint(
                &self,
                handle: &$crate::lease::LeaseHandle,
                req: &$crate::suspension::WaitpointRequest,
            ) -> Result<$crate::suspension::WaitpointGrant, $crate::EngineError> {
                $crate::__forward!(
                    self,
                    true,
                    SignalOps::create_waitpoint(handle, req),
                    Some(handle.execution_id),
                    None
                )
            }
            async fn suspend(
                &self,
                handle: &$crate::lease::LeaseHandle,
                req: &$crate::suspension::SuspendRequest,
            ) -> Result<$crate::suspension::SuspendResponse, $crate::EngineError> {
                $crate::__forward!(
                    self,
                    true,
                    SignalOps::suspend(handle, req),
                    Some(handle.execution_id),
                    None
                )
            }
            async fn signal_by_token(
                &self,
                token: &str,
                req: &$crate::suspension::SignalRequest,
            ) -> Result<$crate::suspension::SignalResponse, $crate::EngineError> {
                $crate::__forward!(self, true, SignalOps::signal_by_token(token, req))
            }
            async fn signal(
                &self,
                namespace: &str,
                id: $crate::ExecutionId,
                waitpoint: &str,
                req: &$crate::suspension::SignalRequest,
            ) -> Result<$crate::suspension::SignalResponse, $crate::EngineError> {
                $crate::__forward!(
                    self,
                    true,
                    SignalOps::signal(namespace, id, waitpoint, req),
                    Some(id),
                    None
                )
            }
            async fn rotate_waitpoint_key(
                &self,
                secret: Option<$crate::suspension::WaitpointSecret>,
                grace_ms: u64,
            ) -> Result<String, $crate::EngineError> {
                $crate::__forward!(
                    self,
                    true,
                    SignalOps::rotate_waitpoint_key(secret, grace_ms)
                )
            }
            async fn adopt_waitpoint_secret(
                &self,
                secret: $crate::suspension::WaitpointSecret,
                grace_ms: u64,
            ) -> Result<Option<String>, $crate::EngineError> {
                $crate::__forward!(
                    self,
                    true,
                    SignalOps::adopt_waitpoint_secret(secret, grace_ms)
                )
            }
            async fn waitpoint_token(
                &self,
                namespace: &str,
                id: $crate::ExecutionId,
                waitpoint: &str,
                expires_at: $crate::Millis,
            ) -> Result<String, $crate::EngineError> {
                $crate::__forward!(
                    self,
                    false,
                    SignalOps::waitpoint_token(namespace, id, waitpoint, expires_at),
                    Some(id),
                    None
                )
            }
        }

        #[$crate::ops::__async_trait]
        impl $crate::ops::FlowOps for $ty {
            async fn create_flow(
                &self,
                spec: $crate::flow::FlowSpec,
            ) -> Result<$crate::flow::FlowCreated, $crate::EngineError> {
                $crate::__forward!(self, true, FlowOps::create_flow(spec))
            }
            async fn add_nodes(
                &self,
                handle: &$crate::lease::LeaseHandle,
                nodes: Vec<$crate::flow::NodeSpec>,
                edges: Vec<$crate::flow::EdgeSpec>,
            ) -> Result<$crate::cascade::NodesAdded, $crate::EngineError> {
                $crate::__forward!(
                    self,
                    true,
                    FlowOps::add_nodes(handle, nodes, edges),
                    Some(handle.execution_id),
                    None
                )
            }
            async fn cancel_flow(
                &self,
                id: $crate::FlowId,
            ) -> Result<$crate::cascade::FlowCancelResponse, $crate::EngineError> {
                $crate::__forward!(self, true, FlowOps::cancel_flow(id), None, Some(id))
            }
            async fn cascade_completion(
                &self,
                payload: &$crate::CompletionPayload,
            ) -> Result<$crate::cascade::CascadeReport, $crate::EngineError> {
                $crate::__forward!(
                    self,
                    true,
                    FlowOps::cascade_completion(payload),
                    Some(payload.execution_id),
                    payload.flow_id
                )
            }
            async fn cascade_completions(
                &self,
                payloads: &[$crate::CompletionPayload],
            ) -> Result<
                Vec<Result<$crate::cascade::CascadeReport, $crate::EngineError>>,
                $crate::EngineError,
            > {
                $crate::__forward!(self, true, FlowOps::cascade_completions(payloads))
            }
        }

        #[$crate::ops::__async_trait]
        impl $crate::ops::MaintenanceOps for $ty {
            async fn expire_leases(&self, limit: u32) -> Result<u32, $crate::EngineError> {
                $crate::__forward!(self, true, MaintenanceOps::expire_leases(limit))
            }
            async fn promote_scheduled(&self, limit: u32) -> Result<u32, $crate::EngineError> {
                $crate::__forward!(self, true, MaintenanceOps::promote_scheduled(limit))
            }
            async fn expire_deadlines(&self, limit: u32) -> Result<u32, $crate::EngineError> {
                $crate::__forward!(self, true, MaintenanceOps::expire_deadlines(limit))
            }
            async fn expire_suspensions(&self, limit: u32) -> Result<u32, $crate::EngineError> {
                $crate::__forward!(self, true, MaintenanceOps::expire_suspensions(limit))
            }
            async fn undispatched_completions(
                &self,
                older_than_ms: u64,
                limit: u32,
            ) -> Result<Vec<$crate::CompletionPayload>, $crate::EngineError> {
                $crate::__forward!(
                    self,
                    false,
                    MaintenanceOps::undispatched_completions(older_than_ms, limit)
                )
            }
            async fn reconcile_blocked(
                &self,
                older_than_ms: u64,
                limit: u32,
            ) -> Result<u32, $crate::EngineError> {
                $crate::__forward!(
                    self,
                    true,
                    MaintenanceOps::reconcile_blocked(older_than_ms, limit)
                )
            }
            async fn trim_outbox(
                &self,
                older_than_ms: u64,
                limit: u32,
            ) -> Result<u32, $crate::EngineError> {
                $crate::__forward!(
                    self,
                    true,
                    MaintenanceOps::trim_outbox(older_than_ms, limit)
                )
            }
        }

        #[$crate::ops::__async_trait]
        impl $crate::ops::ReadOps for $ty {
            async fn get_execution(
                &self,
                id: $crate::ExecutionId,
            ) -> Result<$crate::Execution, $crate::EngineError> {
                $crate::__forward!(self, false, ReadOps::get_execution(id), Some(id), None)
            }
            async fn list_executions(
                &self,
                filter: &$crate::ListFilter,
            ) -> Result<$crate::Page<$crate::Execution>, $crate::EngineError> {
                $crate::__forward!(self, false, ReadOps::list_executions(filter))
            }
            async fn count_by_lane_and_state(
                &self,
                namespace: &str,
            ) -> Result<Vec<$crate::LaneStateCount>, $crate::EngineError> {
                $crate::__forward!(self, false, ReadOps::count_by_lane_and_state(namespace))
            }
            async fn count_ahead(
                &self,
                exec: &$crate::Execution,
            ) -> Result<u64, $crate::EngineError> {
                $crate::__forward!(self, false, ReadOps::count_ahead(exec), Some(exec.id), None)
            }
            async fn get_flow(
                &self,
                id: $crate::FlowId,
            ) -> Result<$crate::flow::FlowView, $crate::EngineError> {
                $crate::__forward!(self, false, ReadOps::get_flow(id), None, Some(id))
            }
            async fn list_flows(
                &self,
                filter: &$crate::flow::FlowFilter,
            ) -> Result<$crate::Page<$crate::flow::FlowSummary>, $crate::EngineError> {
                $crate::__forward!(self, false, ReadOps::list_flows(filter))
            }
            async fn describe(&self) -> Result<$crate::BackendDescription, $crate::EngineError> {
                $crate::__forward!(self, false, ReadOps::describe())
            }
        }
    };
}
