//! Leases: the claim request, the handle a claim returns, the fencing checks
//! every worker operation runs, and the worker-driven transitions.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::EngineError;
use crate::execution::{
    AttemptEnd, AttemptRecord, Execution, DEFAULT_MAX_RELEASES, DEFAULT_NAMESPACE,
};
use crate::flow::Inputs;
use crate::ids::{ExecutionId, FlowId};
use crate::json::JsonText;
use crate::lease_token::LeaseToken;
use crate::limits::Limits;
use crate::state::State;

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

/// The worker operations that carry a lease handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerOp {
    Renew,
    Release,
    Complete,
    Fail,
    /// Dynamic fan-out: adding nodes to the flow.
    AddNodes,
}

/// What the fencing checks decided.
#[derive(Debug)]
pub enum Fence {
    /// The handle holds the lease; apply the operation.
    Proceed,
    /// The same operation was already applied with this handle; answer as then.
    Replay,
    /// Refuse with this error; nothing changed.
    Refuse(EngineError),
    /// The lease ran out: the expiry was applied to the execution (the caller
    /// persists it) and the operation answers `LeaseLost`.
    Expired,
}

/// Runs the fencing checks after the caller's lookup (an unknown id is
/// `NotFound` there): another namespace → `NotFound`; not the current lease
/// (attempt, epoch or token) → `LeaseLost`; the same operation already
/// applied → `Replay`; another outcome recorded → `NotActive`; the lease ran
/// out → the expiry is applied to `exec` and the answer is `Expired`.
pub fn fence(exec: &mut Execution, handle: &LeaseHandle, op: WorkerOp, now: Millis) -> Fence {
    // Another namespace's execution is as good as unknown to this caller.
    if handle.namespace != exec.namespace {
        return Fence::Refuse(EngineError::execution_not_found(handle.execution_id));
    }
    let token_held = exec
        .lease_token
        .is_some_and(|token| token.matches(&handle.lease_token));
    if !token_held || handle.attempt != exec.attempt || handle.lease_epoch != exec.lease_epoch {
        return Fence::Refuse(EngineError::LeaseLost);
    }
    let end = exec.current_attempt().and_then(|a| a.end);
    match (end, op) {
        (Some(AttemptEnd::Completed), WorkerOp::Complete)
        | (Some(AttemptEnd::Failed { .. }), WorkerOp::Fail) => return Fence::Replay,
        _ => {}
    }
    if exec.state != State::Running {
        return Fence::Refuse(match (exec.outcome(), end) {
            (
                _,
                Some(AttemptEnd::LeaseExpired | AttemptEnd::AttemptTimeout | AttemptEnd::Released),
            ) => EngineError::LeaseLost,
            (Some(outcome), _) => EngineError::NotActive { outcome },
            (None, _) => EngineError::LeaseLost,
        });
    }
    if let Some(reason) = lapsed(exec, now) {
        expire_attempt(exec, reason, now);
        return Fence::Expired;
    }
    Fence::Proceed
}

/// Expires the running attempt when its lease or attempt timeout has passed
/// at `now` (the lease-expiry scan's rule); whether it did.
pub fn expire_if_lapsed(exec: &mut Execution, now: Millis) -> bool {
    match lapsed(exec, now) {
        Some(reason) => {
            expire_attempt(exec, reason, now);
            true
        }
        None => false,
    }
}

/// Which expiry applies to a running execution at `now`, if any.
pub fn lapsed(exec: &Execution, now: Millis) -> Option<AttemptEnd> {
    if exec.state != State::Running {
        return None;
    }
    if exec.attempt_deadline.is_some_and(|at| now >= at) {
        Some(AttemptEnd::AttemptTimeout)
    } else if exec.lease_until.is_some_and(|at| now >= at) {
        Some(AttemptEnd::LeaseExpired)
    } else {
        None
    }
}

/// Claims a claimable execution for `worker_id` at `now`, under a new
/// lease `token`.
pub fn claim(exec: &mut Execution, worker_id: &str, token: LeaseToken, now: Millis) -> Claimed {
    if exec.reuse_attempt {
        exec.reuse_attempt = false;
    } else {
        exec.attempt += 1;
    }
    exec.lease_epoch += 1;
    exec.lease_token = Some(token);
    exec.state = State::Running;
    exec.lease_until = Some(now + exec.lease_ms as Millis);
    exec.attempt_deadline = exec.attempt_timeout_ms.map(|t| now + t as Millis);
    exec.worker_id = Some(worker_id.to_owned());
    exec.updated_at = now;
    exec.attempts.push(AttemptRecord {
        attempt: exec.attempt,
        lease_epoch: exec.lease_epoch,
        worker_id: worker_id.to_owned(),
        started_at: now,
        ended_at: None,
        end: None,
        error: None,
    });
    handed_out(exec, token)
}

/// What the worker gets for an execution `claim` has just moved to
/// running. A backend that applies the claim in its own storage (one SQL
/// statement) answers with this, so the answer is the same everywhere.
/// A `Backend` error when the execution holds no lease token (it was never claimed).
pub fn claimed(exec: &Execution) -> Result<Claimed, EngineError> {
    let token = exec.lease_token.ok_or_else(|| {
        EngineError::backend(format!("claimed execution {} has no lease token", exec.id))
    })?;
    Ok(handed_out(exec, token))
}

fn handed_out(exec: &Execution, lease_token: LeaseToken) -> Claimed {
    Claimed {
        handle: LeaseHandle {
            execution_id: exec.id,
            namespace: exec.namespace.clone(),
            attempt: exec.attempt,
            lease_epoch: exec.lease_epoch,
            lease_token,
        },
        namespace: exec.namespace.clone(),
        lane: exec.lane.clone(),
        kind: exec.kind.clone(),
        payload: exec.payload.clone(),
        lease_ms: exec.lease_ms,
        lease_until: exec
            .lease_until
            .unwrap_or(exec.updated_at + exec.lease_ms as Millis),
        attempt_deadline: exec.attempt_deadline,
        deadline: exec.deadline,
        flow_id: exec.flow.as_ref().map(|f| f.flow_id),
        node_key: exec.flow.as_ref().map(|f| f.node_key.clone()),
        inputs: exec.inputs.clone(),
    }
}

/// Runs the fence for `op` and, when it says proceed, `apply`. Returns the
/// answer; `exec` may have changed even when the answer is an error (an
/// expiry applied by step 5).
fn fenced<T>(
    exec: &mut Execution,
    handle: &LeaseHandle,
    op: WorkerOp,
    now: Millis,
    replay: impl FnOnce(&Execution) -> Result<T, EngineError>,
    apply: impl FnOnce(&mut Execution) -> Result<T, EngineError>,
) -> Result<T, EngineError> {
    match fence(exec, handle, op, now) {
        Fence::Proceed => apply(exec),
        Fence::Replay => replay(exec),
        Fence::Refuse(err) => Err(err),
        Fence::Expired => Err(EngineError::LeaseLost),
    }
}

/// Renew and release are never replayed (`fence` answers `Replay` only for
/// complete and fail); should that change, the caller sees `LeaseLost`.
fn not_replayable<T>(_: &Execution) -> Result<T, EngineError> {
    Err(EngineError::LeaseLost)
}

/// Extends the lease to `now + lease_ms`.
pub fn renew(
    exec: &mut Execution,
    handle: &LeaseHandle,
    now: Millis,
) -> Result<Renewed, EngineError> {
    fenced(exec, handle, WorkerOp::Renew, now, not_replayable, |exec| {
        let lease_until = now + exec.lease_ms as Millis;
        exec.lease_until = Some(lease_until);
        exec.updated_at = now;
        Ok(Renewed { lease_until })
    })
}

/// Hands the execution back to its lane without consuming the attempt.
pub fn release(exec: &mut Execution, handle: &LeaseHandle, now: Millis) -> Result<(), EngineError> {
    fenced(
        exec,
        handle,
        WorkerOp::Release,
        now,
        not_replayable,
        |exec| {
            if exec.releases >= DEFAULT_MAX_RELEASES {
                return Err(EngineError::conflict(format!(
                    "released {DEFAULT_MAX_RELEASES} times already; complete or fail it"
                )));
            }
            exec.releases += 1;
            exec.reuse_attempt = true;
            end_attempt(exec, AttemptEnd::Released, None, now);
            exec.state = State::Ready;
            exec.ready_at = now;
            Ok(())
        },
    )
}

/// Records the result; the execution is completed.
pub fn complete(
    exec: &mut Execution,
    handle: &LeaseHandle,
    result: JsonText,
    now: Millis,
) -> Result<CompleteResponse, EngineError> {
    fenced(
        exec,
        handle,
        WorkerOp::Complete,
        now,
        |exec| {
            Ok(CompleteResponse {
                completed_at: exec.finished_at.unwrap_or(exec.updated_at),
            })
        },
        |exec| {
            end_attempt(exec, AttemptEnd::Completed, None, now);
            exec.state = State::Completed;
            exec.result = Some(result);
            exec.finished_at = Some(now);
            Ok(CompleteResponse { completed_at: now })
        },
    )
}

/// Records a failure: a retry when allowed, else terminal.
pub fn fail(
    exec: &mut Execution,
    handle: &LeaseHandle,
    failure: Failure,
    now: Millis,
) -> Result<FailResponse, EngineError> {
    fenced(
        exec,
        handle,
        WorkerOp::Fail,
        now,
        |exec| {
            Ok(match exec.current_attempt().and_then(|a| a.end) {
                Some(AttemptEnd::Failed { retry_at }) => FailResponse {
                    state: if retry_at.is_some() {
                        State::Scheduled
                    } else {
                        State::Failed
                    },
                    retry_at,
                },
                _ => FailResponse {
                    state: exec.state,
                    retry_at: None,
                },
            })
        },
        |exec| {
            Ok(fail_attempt(
                exec,
                failure.error,
                failure.retryable,
                None,
                now,
            ))
        },
    )
}

/// Applies a lease expiry or attempt timeout as a retryable failure.
pub fn expire_attempt(exec: &mut Execution, reason: AttemptEnd, now: Millis) {
    let error = match reason {
        AttemptEnd::AttemptTimeout => "attempt_timeout",
        _ => "lease_expired",
    };
    fail_attempt(exec, error.to_owned(), true, Some(reason), now);
}

/// The shared failure path: schedules a retry when attempts are left and the
/// retry time falls before the deadline, otherwise fails for good. A retry
/// cut short by the deadline fails with the error `deadline`, the attempt
/// keeping its own error, so the record says why no retry came.
fn fail_attempt(
    exec: &mut Execution,
    error: String,
    retryable: bool,
    reason: Option<AttemptEnd>,
    now: Millis,
) -> FailResponse {
    let wanted = (retryable && exec.attempt < exec.attempts_allowed)
        .then(|| exec.retry.retry_at(exec.id, exec.attempt, now));
    let retry_at = wanted.filter(|at| exec.deadline.is_none_or(|deadline| *at < deadline));
    let end = reason.unwrap_or(AttemptEnd::Failed { retry_at });
    let recorded = if wanted.is_some() && retry_at.is_none() {
        "deadline".to_owned()
    } else {
        error.clone()
    };
    end_attempt(exec, end, Some(error), now);
    exec.error = Some(recorded);
    match retry_at {
        Some(at) => {
            exec.state = State::Scheduled;
            exec.ready_at = at;
        }
        None => {
            exec.state = State::Failed;
            exec.finished_at = Some(now);
        }
    }
    FailResponse {
        state: exec.state,
        retry_at,
    }
}

/// Closes the current attempt and drops the lease.
pub(crate) fn end_attempt(
    exec: &mut Execution,
    end: AttemptEnd,
    error: Option<String>,
    now: Millis,
) {
    if let Some(attempt) = exec.current_attempt_mut() {
        if attempt.end.is_none() {
            attempt.end = Some(end);
            attempt.ended_at = Some(now);
            attempt.error = error;
        }
    }
    exec.lease_until = None;
    exec.attempt_deadline = None;
    exec.worker_id = None;
    exec.updated_at = now;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::execution::SubmitRequest;

    fn running() -> (Execution, LeaseHandle) {
        let req = SubmitRequest::new("lane", "kind", JsonText::unchecked("{}".to_owned()));
        let mut exec = Execution::new(ExecutionId::new(), req, 1_000);
        let claimed = claim(&mut exec, "w", LeaseToken::random(), 1_000);
        (exec, claimed.handle)
    }

    fn kind_of(fence: Fence) -> Option<ErrorKind> {
        match fence {
            Fence::Refuse(err) => Some(err.kind()),
            _ => None,
        }
    }

    #[test]
    fn the_claimed_handle_holds_the_lease() {
        let (mut exec, handle) = running();
        assert!(matches!(
            fence(&mut exec, &handle, WorkerOp::Renew, 1_001),
            Fence::Proceed
        ));
    }

    #[test]
    fn a_guessed_token_loses_the_lease() {
        let (mut exec, mut handle) = running();
        handle.lease_token = LeaseToken::random();
        let before = exec.clone();
        assert_eq!(
            kind_of(fence(&mut exec, &handle, WorkerOp::Complete, 1_001)),
            Some(ErrorKind::LeaseLost)
        );
        assert_eq!(exec, before);
    }

    #[test]
    fn another_namespace_does_not_find_the_execution() {
        let (mut exec, mut handle) = running();
        handle.namespace = "tenant-b".to_owned();
        assert_eq!(
            kind_of(fence(&mut exec, &handle, WorkerOp::Complete, 1_001)),
            Some(ErrorKind::NotFound)
        );
    }

    #[test]
    fn a_replay_needs_the_token_too() {
        let (mut exec, handle) = running();
        let result = JsonText::unchecked("1".to_owned());
        assert!(complete(&mut exec, &handle, result.clone(), 1_002).is_ok());
        assert!(complete(&mut exec, &handle, result.clone(), 1_003).is_ok());
        let mut forged = handle.clone();
        forged.lease_token = LeaseToken::random();
        assert_eq!(
            complete(&mut exec, &forged, result, 1_004).map_err(|e| e.kind()),
            Err(ErrorKind::LeaseLost)
        );
    }

    #[test]
    fn a_new_claim_draws_a_new_token() {
        let (mut exec, first) = running();
        assert!(release(&mut exec, &first, 1_001).is_ok());
        let second = claim(&mut exec, "w", LeaseToken::random(), 1_002).handle;
        assert_ne!(first.lease_token, second.lease_token);
        assert_eq!(
            renew(&mut exec, &first, 1_003).map_err(|e| e.kind()),
            Err(ErrorKind::LeaseLost)
        );
    }
}
