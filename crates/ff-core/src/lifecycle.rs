//! Transitions not driven by a lease holder: cancel, requeue, deadlines and
//! scheduled promotion.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::EngineError;
use crate::execution::{AttemptEnd, Execution};
use crate::flow::Inputs;
use crate::lease::end_attempt;
use crate::state::{Outcome, State};

/// The answer to cancel.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelResponse {
    /// The execution's outcome after the call.
    pub outcome: Outcome,
    /// False when it was already terminal (nothing changed).
    pub changed: bool,
}

/// Cancels a non-terminal execution; on a terminal one, reports its outcome
/// and changes nothing.
pub fn cancel(exec: &mut Execution, now: Millis) -> CancelResponse {
    if let Some(outcome) = exec.outcome() {
        return CancelResponse {
            outcome,
            changed: false,
        };
    }
    finish_without_worker(exec, State::Cancelled, AttemptEnd::Cancelled, None, now);
    CancelResponse {
        outcome: Outcome::Cancelled,
        changed: true,
    }
}

/// Fails a non-terminal execution whose deadline has passed; returns whether
/// it changed.
pub fn expire_deadline(exec: &mut Execution, now: Millis) -> bool {
    let due = exec.deadline.is_some_and(|d| d <= now);
    if !due || exec.state.is_terminal() {
        return false;
    }
    finish_without_worker(
        exec,
        State::Failed,
        AttemptEnd::Deadline,
        Some("deadline".to_owned()),
        now,
    );
    true
}

pub(crate) fn finish_without_worker(
    exec: &mut Execution,
    state: State,
    end: AttemptEnd,
    error: Option<String>,
    now: Millis,
) {
    if exec.state == State::Running {
        end_attempt(exec, end, error.clone(), now);
    }
    crate::suspension::rules::end_on_finish(exec, now);
    if error.is_some() {
        exec.error = error;
    }
    exec.state = state;
    exec.finished_at = Some(now);
    exec.updated_at = now;
}

/// Gives a failed solo execution one more attempt.
pub fn requeue(exec: &mut Execution, now: Millis) -> Result<(), EngineError> {
    if exec.flow.is_some() {
        return Err(EngineError::conflict(
            "requeue is for solo executions; this one belongs to a flow",
        ));
    }
    if exec.state != State::Failed {
        return Err(EngineError::conflict(format!(
            "only a failed execution can be requeued; this one is {}",
            exec.state
        )));
    }
    exec.attempts_allowed = exec.attempt + 1;
    exec.reuse_attempt = false;
    exec.state = State::Ready;
    exec.ready_at = now;
    exec.finished_at = None;
    exec.updated_at = now;
    Ok(())
}

/// Moves a due scheduled execution to ready; returns whether it changed.
/// (A due scheduled execution is already claimable; this keeps reads and
/// counts true.)
pub fn promote_scheduled(exec: &mut Execution, now: Millis) -> bool {
    if exec.state != State::Scheduled || exec.ready_at > now {
        return false;
    }
    exec.state = State::Ready;
    exec.updated_at = now;
    true
}

/// Moves a blocked flow node whose join is satisfied to ready (or scheduled,
/// when its `run_at` is still ahead), with its parents' `inputs`.
pub fn unblock(exec: &mut Execution, inputs: Inputs, now: Millis) {
    let (state, ready_at) = match exec.run_at {
        Some(at) if at > now => (State::Scheduled, at),
        _ => (State::Ready, now),
    };
    exec.state = state;
    exec.ready_at = ready_at;
    exec.inputs = Some(inputs);
    exec.updated_at = now;
}

/// Skips a blocked flow node whose join can no longer be satisfied.
pub fn skip(exec: &mut Execution, now: Millis) {
    exec.state = State::Skipped;
    exec.finished_at = Some(now);
    exec.updated_at = now;
}
