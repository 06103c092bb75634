//! The fencing rules, run in this order by every worker operation after the
//! caller's lookup (an unknown id is `NotFound` there): the handle's
//! namespace, the current lease (attempt, epoch and token), the replay of
//! an operation already applied, another outcome recorded meanwhile, and
//! the lease expiry rule.

use super::transitions::expire_attempt;
use super::LeaseHandle;
use crate::clock::Millis;
use crate::error::EngineError;
use crate::execution::{AttemptEnd, Execution};
use crate::state::State;

/// The worker operations that carry a lease handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerOp {
    Renew,
    Release,
    Complete,
    Fail,
    /// Dynamic fan-out: adding nodes to the flow.
    AddNodes,
    /// Creating a waitpoint before suspending.
    Waitpoint,
    Suspend,
    /// Reporting budget usage.
    ReportUsage,
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
                Some(
                    AttemptEnd::LeaseExpired
                    | AttemptEnd::AttemptTimeout
                    | AttemptEnd::Released
                    | AttemptEnd::Suspended,
                ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::lease::running_for_test as running;
    use crate::lease_token::LeaseToken;

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
}
