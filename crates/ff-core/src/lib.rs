//! FlowFabric's core: the execution model, the rules that move it, the
//! backend traits and the one error type. No I/O lives here; backends call
//! these pure functions inside their own atomic steps, with `now` passed in.
//!
//! # Layout
//! - [`ids`]: time-ordered UUIDv7 ids.
//! - [`execution`]: the submit request, defaults, validation and the stored record.
//! - [`lease`]: claim requests, lease handles and the answers to worker
//!   operations; [`lease::fencing`]: the fencing rules; [`lease::transitions`]:
//!   claim, renew, release, complete, fail, expiry. [`lease_token`]: the
//!   lease's secret.
//! - [`lifecycle`]: cancel, requeue, deadlines, scheduled promotion.
//! - [`explain`]: what holds an execution that is not running.
//! - [`retry`]: retry policy and deterministic backoff.
//! - [`flow`]: [`flow::spec`] (what a caller asks for), [`flow::validate`]
//!   (the checks, cycles named), [`flow::record`] (what is stored, the derived
//!   flow state), [`flow::view`] (what reads return, the list filter).
//! - [`join`], [`cascade`]: join rules, and the flow algorithms written once
//!   over the [`cascade::FlowStore`] a backend offers.
//! - [`completion`]: the outbox payload and the [`CompletionBackend`] subscription.
//! - [`completion_batch`]: a batch of completions split into solo executions,
//!   flow members and repeats, cascaded and answered in payload order.
//! - [`reads`]: list filters, cursors, counts, the backend's description.
//! - [`ops`]: the backend traits, joined by [`EngineBackend`]; the storage
//!   side backends implement ([`ExecutionStore`], [`FlowCommands`]), from
//!   which the execution, lease and flow operations follow; and
//!   [`wrap_backend!`] for wrappers ([`ops::BackendWrapper`]).
//! - [`flow_control`]: the claim-time rules of rate limits, concurrency
//!   limits and fair shares (not wired to a backend yet).
//! - [`suspension`]: waitpoints, signals, suspend and resume rules, and
//!   the signed waitpoint tokens.
//! - [`clock`], [`json`], [`limits`], [`state`], [`error`]: the vocabulary;
//!   [`wire`]: errors as they cross HTTP.

pub mod cascade;
pub mod clock;
pub mod completion;
pub mod completion_batch;
pub mod error;
pub mod execution;
pub mod explain;
pub mod flow;
pub mod flow_control;
pub mod ids;
pub mod join;
pub mod json;
pub mod lease;
pub mod lease_token;
pub mod lifecycle;
pub mod limits;
pub mod ops;
pub mod reads;
pub mod retry;
pub mod state;
pub mod suspension;
pub mod wire;

pub use clock::{Clock, ManualClock, Millis, SharedClock, SystemClock};
pub use completion::{CompletionBackend, CompletionPayload, CompletionStream};
pub use error::{EngineError, ErrorKind};
pub use execution::{Execution, SubmitRequest, Submitted, DEFAULT_NAMESPACE};
pub use ids::{ExecutionId, FlowId, SignalId};
pub use json::JsonText;
pub use lease::{
    ClaimRequest, Claimed, CompleteResponse, FailResponse, Failure, LeaseHandle, Renewed,
};
pub use lease_token::LeaseToken;
pub use lifecycle::CancelResponse;
pub use limits::Limits;
pub use ops::{
    EngineBackend, ExecutionOps, ExecutionStore, FlowCommand, FlowCommands, FlowControlOps,
    FlowControlStore, FlowOps, FlowScope, LeaseOps, MaintenanceOps, ReadOps, Rule, SignalOps,
    SignalStore, Valid,
};
pub use reads::{BackendDescription, LaneStateCount, ListFilter, Page};
pub use retry::RetryPolicy;
pub use state::{Outcome, State};
pub use wire::WireError;
