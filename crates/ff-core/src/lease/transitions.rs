//! The worker-driven transitions of an execution: claim, renew, release,
//! complete, fail, and a lapsed lease applied as a retryable failure. Each
//! worker operation runs the fencing rules first.

use super::fencing::{fence, Fence, WorkerOp};
use super::{Claimed, CompleteResponse, FailResponse, Failure, LeaseHandle, Renewed};
use crate::clock::Millis;
use crate::error::EngineError;
use crate::execution::{AttemptEnd, AttemptRecord, Execution, DEFAULT_MAX_RELEASES};
use crate::json::JsonText;
use crate::lease_token::LeaseToken;
use crate::state::State;

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
        signals: crate::suspension::rules::resumed_signals(exec),
    }
}

/// Runs the fence for `op` and, when it says proceed, `apply`. Returns the
/// answer; `exec` may have changed even when the answer is an error (an
/// expiry applied by the lease expiry rule).
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
    use crate::lease::running_for_test as running;

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
