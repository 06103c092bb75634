//! Leases: the claim request, the handle a claim returns and the answers
//! to the worker operations.
//!
//! - [`fencing`]: the fencing rules every worker operation runs first, and
//!   the expiry rule.
//! - [`transitions`]: claim, renew, release, complete, fail and expiry
//!   applied to an execution.
//!
//! Every item is re-exported here, so `ff_core::lease::X` names it.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::EngineError;
use crate::execution::DEFAULT_NAMESPACE;
use crate::flow::Inputs;
use crate::ids::{ExecutionId, FlowId};
use crate::json::JsonText;
use crate::lease_token::LeaseToken;
use crate::limits::Limits;
use crate::state::State;
use crate::suspension::Signal;

pub mod fencing;
pub mod transitions;

pub use fencing::{expire_if_lapsed, fence, lapsed, Fence, WorkerOp};
pub(crate) use transitions::end_attempt;
pub use transitions::{claim, claimed, complete, expire_attempt, fail, release, renew};

/// Proof of a lease: which attempt of which execution, under which epoch,
/// in which namespace, and the lease's secret token. Every worker operation
/// checks all of them, so knowing an execution's id is not enough to act on
/// its lease.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseHandle {
    pub execution_id: ExecutionId,
    pub namespace: String,
    pub attempt: u32,
    pub lease_epoch: u64,
    pub lease_token: LeaseToken,
}

impl LeaseHandle {
    /// The handle, when it belongs to `namespace`; `NotFound` otherwise, so a
    /// caller acting in one namespace never reaches another's leases.
    pub fn in_namespace(&self, namespace: &str) -> Result<&Self, EngineError> {
        if self.namespace == namespace {
            Ok(self)
        } else {
            Err(EngineError::execution_not_found(self.execution_id))
        }
    }
}

/// What a worker asks for when it claims.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClaimRequest {
    pub namespace: String,
    pub lanes: Vec<String>,
    /// Sorted and deduplicated by [`ClaimRequest::validate`].
    pub capabilities: Vec<String>,
    /// At most this many executions.
    pub n: u32,
    pub worker_id: String,
}

impl ClaimRequest {
    /// Claims one execution from `lanes` in the default namespace.
    pub fn new<S: Into<String>>(
        lanes: impl IntoIterator<Item = S>,
        worker_id: impl Into<String>,
    ) -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            lanes: lanes.into_iter().map(Into::into).collect(),
            capabilities: Vec::new(),
            n: 1,
            worker_id: worker_id.into(),
        }
    }

    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    pub fn capabilities<S: Into<String>>(mut self, caps: impl IntoIterator<Item = S>) -> Self {
        self.capabilities = caps.into_iter().map(Into::into).collect();
        self.capabilities.sort();
        self.capabilities.dedup();
        self
    }

    /// At most `n` executions per claim.
    pub fn max(mut self, n: u32) -> Self {
        self.n = n;
        self
    }

    /// Checks the request and normalizes its capabilities.
    pub fn validate(&mut self, limits: &Limits) -> Result<(), EngineError> {
        limits.check_name("namespace", &self.namespace)?;
        if self.lanes.is_empty() {
            return Err(EngineError::invalid("lanes", "name at least one lane"));
        }
        for lane in &self.lanes {
            limits.check_name("lanes", lane)?;
        }
        for cap in &self.capabilities {
            limits.check_name("capabilities", cap)?;
        }
        limits.check_name("worker_id", &self.worker_id)?;
        if self.n == 0 || self.n as usize > limits.max_batch {
            return Err(EngineError::invalid(
                "n",
                format!("must be between 1 and {}", limits.max_batch),
            ));
        }
        self.capabilities.sort();
        self.capabilities.dedup();
        self.lanes.sort();
        self.lanes.dedup();
        Ok(())
    }
}

/// An execution handed to a worker.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claimed {
    pub handle: LeaseHandle,
    pub namespace: String,
    pub lane: String,
    pub kind: String,
    pub payload: JsonText,
    pub lease_ms: u64,
    pub lease_until: Millis,
    pub attempt_deadline: Option<Millis>,
    pub deadline: Option<Millis>,
    pub flow_id: Option<FlowId>,
    pub node_key: Option<String>,
    /// For a flow node: its parents' outcomes and results.
    pub inputs: Option<Inputs>,
    /// After a resume: the signals that satisfied the suspension.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<Signal>,
}

/// The answer to renew.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renewed {
    pub lease_until: Millis,
}

/// The answer to complete (the same on a replay).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteResponse {
    pub completed_at: Millis,
}

/// A worker's failure report.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub error: String,
    /// False fails the execution at once, whatever attempts are left.
    #[serde(default = "retryable_default")]
    pub retryable: bool,
}

fn retryable_default() -> bool {
    true
}

impl Failure {
    pub fn retryable(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            retryable: true,
        }
    }

    pub fn permanent(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            retryable: false,
        }
    }
}

/// The answer to fail (the same on a replay).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailResponse {
    /// `scheduled` when a retry is due at `retry_at`, else `failed`.
    pub state: State,
    pub retry_at: Option<Millis>,
}

/// A fresh execution claimed at 1000 ms, with its handle, for the unit tests
/// of the fencing rules and the transitions.
#[cfg(test)]
pub(crate) fn running_for_test() -> (crate::execution::Execution, LeaseHandle) {
    let req =
        crate::execution::SubmitRequest::new("lane", "kind", JsonText::unchecked("{}".to_owned()));
    let mut exec = crate::execution::Execution::new(ExecutionId::new(), req, 1_000);
    let claimed = claim(&mut exec, "w", LeaseToken::random(), 1_000);
    (exec, claimed.handle)
}
