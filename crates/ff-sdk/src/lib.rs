//! FlowFabric's Rust SDK: a [`Client`] to submit, read and steer executions
//! and flows, and a [`Worker`] runtime that runs handlers for them — one API
//! whether the engine runs in this process ([`Client::embedded`]) or behind
//! `ff serve` ([`Client::http`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use ff_sdk::{Client, Fail, JobContext, JsonText, SubmitRequest, Worker};
//! use serde_json::json;
//!
//! # async fn example() -> Result<(), ff_core::EngineError> {
//! let client = Client::http("http://127.0.0.1:7878", None)?;
//! let worker = Worker::builder(client.clone())
//!     .lane("emails")
//!     .concurrency(8)
//!     .handler("send", |ctx: JobContext| async move {
//!         let to: String = ctx.payload::<serde_json::Value>()?["to"]
//!             .as_str()
//!             .ok_or_else(|| Fail::permanent("no recipient"))?
//!             .to_owned();
//!         Ok(json!({ "sent_to": to }))
//!     })
//!     .start()?;
//! let id = client
//!     .submit(SubmitRequest::new(
//!         "emails",
//!         "send",
//!         JsonText::from_value(&json!({"to": "ada@example.com"})),
//!     ))
//!     .await?
//!     .id;
//! let done = client.wait_for_result(id, Duration::from_secs(10)).await?;
//! worker.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`client`]: [`Client`] and [`ExecutionResult`].
//! - [`worker`]: [`Worker`], its builder, [`JobContext`] and the handler
//!   control values [`Retry`], [`Fail`], [`Release`], [`Suspend`]; the runtime (claims,
//!   renewals, cancellation, shutdown) in `worker::runtime`.
//! - `transport`: the one internal trait both transports implement —
//!   `embedded` (the backend's traits in process, with `ff_engine::Engine`
//!   running beside) and `http` (the `/v1/namespaces/{namespace}/` API,
//!   errors mapped back to [`EngineError`] kinds; `sse` reads the
//!   per-execution event stream).
//! - [`error`]: [`HttpError`], what an HTTP answer with no
//!   [`EngineError`] kind (401, 500) carries inside `EngineError::Backend`.

pub mod client;
pub mod error;
mod transport;
pub mod worker;

pub use client::{Client, ExecutionResult};
pub use error::HttpError;
pub use ff_core::flow::{EdgeSpec, FlowSpec, NodeSpec};
/// Flow-control policies and budgets ([`Client::put_policy`],
/// [`JobContext::report_usage`]).
pub use ff_core::flow_control;
pub use ff_core::suspension::{
    ResumeCondition, Signal, SignalRequest, SignalResponse, SignalsView, TimeoutPolicy,
    WaitpointGrant,
};
pub use ff_core::{
    EngineError, ErrorKind, Execution, ExecutionId, FlowId, JsonText, Limits, Outcome, RetryPolicy,
    State, SubmitRequest,
};
pub use worker::{
    Fail, HandlerError, JobContext, Release, Retry, StopReason, Suspend, Worker, WorkerBuilder,
    WorkerStats,
};
