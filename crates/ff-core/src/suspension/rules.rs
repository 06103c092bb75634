//! The suspension rules, applied to one execution inside a backend's
//! atomic step: create a waitpoint, suspend, deliver a signal (resuming
//! when the condition is met) and apply a timeout.

use super::model::{
    Signal, SignalRequest, SignalResponse, SuspendRequest, Suspension, SuspensionEnd,
    TimeoutPolicy, WaitState, Waitpoint, WaitpointRequest, WaitpointState,
    DEFAULT_WAITPOINT_TTL_MS, TIMEOUT_SIGNAL, TIMEOUT_SOURCE,
};
use super::token::{Keyring, TokenClaims};
use crate::clock::Millis;
use crate::error::EngineError;
use crate::execution::{AttemptEnd, Execution};
use crate::ids::SignalId;
use crate::lease::{end_attempt, fence, Fence, LeaseHandle, WorkerOp};
use crate::lifecycle::finish_without_worker;
use crate::limits::Limits;
use crate::state::State;

/// The error recorded when a suspension times out with policy `fail` or
/// `cancel`.
pub const SUSPENSION_TIMEOUT: &str = "suspension_timeout";

/// What suspend decided, before tokens are minted for the waitpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuspendDecision {
    Suspended {
        waitpoints: Vec<Waitpoint>,
        timeout_at: Option<Millis>,
    },
    AlreadySatisfied {
        signals: Vec<Signal>,
    },
}

/// Creates waitpoint `req.key` for the running attempt of `handle`, or
/// answers with it when this attempt created it already.
pub fn create_waitpoint(
    exec: &mut Execution,
    handle: &LeaseHandle,
    req: &WaitpointRequest,
    limits: &Limits,
    now: Millis,
) -> Result<Waitpoint, EngineError> {
    fenced(exec, handle, WorkerOp::Waitpoint, now)?;
    let attempt = exec.attempt;
    let wait = exec.wait.get_or_insert_with(WaitState::default);
    let waitpoint = open_waitpoint(wait, &req.key, attempt, req.ttl_ms, limits, now)?.clone();
    exec.updated_at = now;
    Ok(waitpoint)
}

/// Suspends the running attempt of `handle` on `req.waitpoints`; see
/// [`SuspendDecision`]. A repeat of the same handle and key answers as
/// the first call did.
pub fn suspend(
    exec: &mut Execution,
    handle: &LeaseHandle,
    req: &SuspendRequest,
    limits: &Limits,
    now: Millis,
) -> Result<SuspendDecision, EngineError> {
    if let Some(answer) = replay(exec, handle, &req.key)? {
        return Ok(answer);
    }
    fenced(exec, handle, WorkerOp::Suspend, now)?;
    let attempt = exec.attempt;
    let wait = exec.wait.get_or_insert_with(WaitState::default);
    if wait.suspensions.len() >= limits.max_suspensions {
        return Err(EngineError::conflict(format!(
            "an execution may suspend at most {} times",
            limits.max_suspensions
        )));
    }
    // Every key is checked before any is opened, so a refused suspend
    // leaves nothing behind.
    let mut new_keys = 0;
    for key in &req.waitpoints {
        match wait.waitpoint(key) {
            Some(existing) => check_reusable(existing, now)?,
            None => new_keys += 1,
        }
    }
    check_room(wait, new_keys, limits)?;
    for key in &req.waitpoints {
        open_waitpoint(wait, key, attempt, req.ttl_ms, limits, now)?;
    }
    let buffered = signals_to(wait, &req.waitpoints);
    let met = req.condition.is_met(
        &req.waitpoints,
        buffered.iter().filter_map(|s| s.waitpoint.as_deref()),
    );
    let mut suspension = Suspension {
        key: req.key.clone(),
        attempt,
        lease_epoch: exec.lease_epoch,
        waitpoints: req.waitpoints.clone(),
        condition: req.condition,
        timeout_at: req.timeout_ms.map(|ms| now.saturating_add(ms as Millis)),
        on_timeout: req.on_timeout,
        suspended_at: now,
        ended: None,
        satisfied_by: Vec::new(),
    };
    if met {
        suspension.ended = Some(SuspensionEnd::AlreadySatisfied { at: now });
        suspension.satisfied_by = buffered.iter().map(|s| s.id).collect();
        set_state(wait, &req.waitpoints, WaitpointState::Closed);
        wait.suspensions.push(suspension);
        exec.updated_at = now;
        return Ok(SuspendDecision::AlreadySatisfied { signals: buffered });
    }
    set_state(wait, &req.waitpoints, WaitpointState::Waiting);
    let timeout_at = suspension.timeout_at;
    wait.suspensions.push(suspension);
    let waitpoints = waitpoints_of(wait, &req.waitpoints);
    end_attempt(exec, AttemptEnd::Suspended, None, now);
    exec.state = State::Suspended;
    exec.reuse_attempt = true;
    Ok(SuspendDecision::Suspended {
        waitpoints,
        timeout_at,
    })
}

/// Delivers a signal to waitpoint `key` and resumes the execution when it
/// completes the condition in force. With a verified token (its claims and
/// the keyring that verified them), the token must name this waitpoint's
/// expiry and still be in time — checked after a repeated idempotency key
/// is answered, so a sender's retry gets its first answer back.
pub fn deliver(
    exec: &mut Execution,
    key: &str,
    token: Option<(&Keyring, &TokenClaims)>,
    req: &SignalRequest,
    limits: &Limits,
    now: Millis,
) -> Result<SignalResponse, EngineError> {
    let waitpoint_missing = || EngineError::NotFound {
        entity: "waitpoint",
        id: key.to_owned(),
    };
    // A timeout already due wins over a signal the scan has not beaten to
    // it, so the outcome never depends on how far behind the scan is.
    time_out(exec, now);
    let outcome = exec.outcome();
    let wait = exec.wait.as_mut().ok_or_else(waitpoint_missing)?;
    let waitpoint = wait.waitpoint(key).ok_or_else(waitpoint_missing)?;
    if token.is_some_and(|(_, claims)| claims.expires_at != waitpoint.expires_at) {
        return Err(EngineError::invalid(
            "token",
            "does not match the waitpoint's expiry",
        ));
    }
    if let Some(first) = req.idempotency_key.as_deref().and_then(|k| {
        wait.signals.iter().find(|s| {
            s.waitpoint.as_deref() == Some(key) && s.idempotency_key.as_deref() == Some(k)
        })
    }) {
        return Ok(SignalResponse {
            signal_id: first.id,
            duplicate: true,
            resumed: false,
        });
    }
    if let Some((ring, claims)) = token {
        ring.check_time(claims, now)?;
    }
    if let Some(outcome) = outcome {
        return Err(EngineError::NotActive { outcome });
    }
    if waitpoint.state == WaitpointState::Closed {
        return Err(EngineError::conflict(format!(
            "waitpoint `{key}` is closed: its suspension already ended"
        )));
    }
    if now >= waitpoint.expires_at {
        return Err(EngineError::conflict(format!(
            "waitpoint `{key}` expired at {}",
            waitpoint.expires_at
        )));
    }
    if wait
        .signals
        .iter()
        .filter(|s| s.waitpoint.is_some())
        .count()
        >= limits.max_signals
    {
        return Err(EngineError::conflict(format!(
            "the execution has received its limit of {} signals",
            limits.max_signals
        )));
    }
    let signal_id = SignalId::new();
    wait.signals.push(Signal {
        id: signal_id,
        waitpoint: Some(key.to_owned()),
        name: req.name.clone(),
        payload: req.payload.clone(),
        source: req.source.clone(),
        idempotency_key: req.idempotency_key.clone(),
        received_at: now,
    });
    exec.updated_at = now;
    let resumed = exec.state == State::Suspended && resume_if_met(exec, now);
    Ok(SignalResponse {
        signal_id,
        duplicate: false,
        resumed,
    })
}

/// Applies the timeout policy of a suspension whose timeout has passed at
/// `now`; whether it changed anything.
pub fn time_out(exec: &mut Execution, now: Millis) -> bool {
    if exec.state != State::Suspended {
        return false;
    }
    let Some(wait) = exec.wait.as_mut() else {
        return false;
    };
    let Some(current) = wait.suspensions.last_mut().filter(|s| s.ended.is_none()) else {
        return false;
    };
    if current.timeout_at.is_none_or(|at| at > now) {
        return false;
    }
    let policy = current.on_timeout;
    current.ended = Some(SuspensionEnd::TimedOut { at: now });
    let keys = current.waitpoints.clone();
    match policy {
        TimeoutPolicy::Fail | TimeoutPolicy::Cancel => {
            set_state(wait, &keys, WaitpointState::Closed);
            let state = if policy == TimeoutPolicy::Fail {
                State::Failed
            } else {
                State::Cancelled
            };
            finish_without_worker(
                exec,
                state,
                AttemptEnd::Cancelled,
                Some(SUSPENSION_TIMEOUT.to_owned()),
                now,
            );
        }
        TimeoutPolicy::Resume => {
            let timeout = Signal {
                id: SignalId::new(),
                waitpoint: None,
                name: TIMEOUT_SIGNAL.to_owned(),
                payload: crate::json::JsonText::null(),
                source: Some(TIMEOUT_SOURCE.to_owned()),
                idempotency_key: None,
                received_at: now,
            };
            let mut satisfied: Vec<SignalId> =
                signals_to(wait, &keys).iter().map(|s| s.id).collect();
            satisfied.push(timeout.id);
            wait.signals.push(timeout);
            if let Some(current) = wait.suspensions.last_mut() {
                current.satisfied_by = satisfied;
            }
            set_state(wait, &keys, WaitpointState::Closed);
            make_ready(exec, now);
        }
    }
    true
}

/// When the suspension in force times out; what a backend indexes for its
/// timeout scan.
pub fn timeout_at(exec: &Execution) -> Option<Millis> {
    if exec.state != State::Suspended {
        return None;
    }
    exec.wait.as_ref()?.current()?.timeout_at
}

/// Ends the suspension in force, if any, when the execution ends another
/// way (cancel, deadline); its waitpoints close.
pub(crate) fn end_on_finish(exec: &mut Execution, now: Millis) {
    let Some(wait) = exec.wait.as_mut() else {
        return;
    };
    let Some(current) = wait.suspensions.last_mut().filter(|s| s.ended.is_none()) else {
        return;
    };
    current.ended = Some(SuspensionEnd::Ended { at: now });
    let keys = current.waitpoints.clone();
    set_state(wait, &keys, WaitpointState::Closed);
}

/// Every signal that satisfied a suspension of the execution, of any
/// attempt, in arrival order: what a claim hands the handler, which runs
/// from the top and so must see the answers of its earlier waits too
/// (after a retry, or a second wait in the same run).
pub fn resumed_signals(exec: &Execution) -> Vec<Signal> {
    let Some(wait) = exec.wait.as_ref() else {
        return Vec::new();
    };
    wait.signals
        .iter()
        .filter(|signal| {
            wait.suspensions
                .iter()
                .filter(|s| s.ended.is_some())
                .any(|s| s.satisfied_by.contains(&signal.id))
        })
        .cloned()
        .collect()
}

fn resume_if_met(exec: &mut Execution, now: Millis) -> bool {
    let Some(wait) = exec.wait.as_mut() else {
        return false;
    };
    let Some(current) = wait.current() else {
        return false;
    };
    let keys = current.waitpoints.clone();
    let delivered = signals_to(wait, &keys);
    let met = current.condition.is_met(
        &keys,
        delivered.iter().filter_map(|s| s.waitpoint.as_deref()),
    );
    if !met {
        return false;
    }
    if let Some(current) = wait.suspensions.last_mut() {
        current.ended = Some(SuspensionEnd::Resumed { at: now });
        current.satisfied_by = delivered.iter().map(|s| s.id).collect();
    }
    set_state(wait, &keys, WaitpointState::Closed);
    make_ready(exec, now);
    true
}

fn make_ready(exec: &mut Execution, now: Millis) {
    exec.state = State::Ready;
    exec.ready_at = now;
    exec.updated_at = now;
}

/// A replayed suspend: the answer of the suspension this handle asked for
/// under `key`, once the handle is proven to be that lease's.
fn replay(
    exec: &Execution,
    handle: &LeaseHandle,
    key: &str,
) -> Result<Option<SuspendDecision>, EngineError> {
    let Some(wait) = exec.wait.as_ref() else {
        return Ok(None);
    };
    let Some(first) = wait.suspensions.iter().find(|s| {
        s.key == key && s.attempt == handle.attempt && s.lease_epoch == handle.lease_epoch
    }) else {
        return Ok(None);
    };
    if handle.namespace != exec.namespace {
        return Err(EngineError::execution_not_found(handle.execution_id));
    }
    let token_held = exec
        .lease_token
        .is_some_and(|token| token.matches(&handle.lease_token));
    if !token_held || handle.attempt != exec.attempt {
        return Err(EngineError::LeaseLost);
    }
    Ok(Some(match first.ended {
        Some(SuspensionEnd::AlreadySatisfied { .. }) => SuspendDecision::AlreadySatisfied {
            signals: wait.signals_of(&first.satisfied_by),
        },
        _ => SuspendDecision::Suspended {
            waitpoints: waitpoints_of(wait, &first.waitpoints),
            timeout_at: first.timeout_at,
        },
    }))
}

fn fenced(
    exec: &mut Execution,
    handle: &LeaseHandle,
    op: WorkerOp,
    now: Millis,
) -> Result<(), EngineError> {
    match fence(exec, handle, op, now) {
        Fence::Proceed => Ok(()),
        Fence::Refuse(err) => Err(err),
        Fence::Replay | Fence::Expired => Err(EngineError::LeaseLost),
    }
}

/// The waitpoint `key` open for `attempt`: the existing one, or a new one.
fn open_waitpoint<'w>(
    wait: &'w mut WaitState,
    key: &str,
    attempt: u32,
    ttl_ms: Option<u64>,
    limits: &Limits,
    now: Millis,
) -> Result<&'w Waitpoint, EngineError> {
    let position = match wait.waitpoints.iter().position(|w| w.key == key) {
        Some(i) => {
            check_reusable(&wait.waitpoints[i], now)?;
            // A pending waitpoint outlives the attempt that made it: a
            // retry takes it over, with its token and buffered signals.
            wait.waitpoints[i].attempt = attempt;
            i
        }
        None => {
            check_room(wait, 1, limits)?;
            let ttl = ttl_ms.unwrap_or(DEFAULT_WAITPOINT_TTL_MS);
            wait.waitpoints.push(Waitpoint {
                key: key.to_owned(),
                attempt,
                created_at: now,
                expires_at: now.saturating_add(ttl as Millis),
                state: WaitpointState::Pending,
            });
            wait.waitpoints.len() - 1
        }
    };
    Ok(&wait.waitpoints[position])
}

/// An existing waitpoint may be opened again only while pending and not
/// expired.
fn check_reusable(existing: &Waitpoint, now: Millis) -> Result<(), EngineError> {
    let key = &existing.key;
    if existing.state != WaitpointState::Pending {
        return Err(EngineError::conflict(format!(
            "waitpoint `{key}` was used already; a waitpoint key names one \
             waitpoint for the execution's life"
        )));
    }
    if now >= existing.expires_at {
        return Err(EngineError::conflict(format!(
            "waitpoint `{key}` expired at {}",
            existing.expires_at
        )));
    }
    Ok(())
}

/// Whether `new` more waitpoints fit under the limit.
fn check_room(wait: &WaitState, new: usize, limits: &Limits) -> Result<(), EngineError> {
    if wait.waitpoints.len() + new > limits.max_waitpoints {
        return Err(EngineError::conflict(format!(
            "an execution may create at most {} waitpoints",
            limits.max_waitpoints
        )));
    }
    Ok(())
}

fn signals_to(wait: &WaitState, keys: &[String]) -> Vec<Signal> {
    wait.signals
        .iter()
        .filter(|s| s.waitpoint.as_ref().is_some_and(|w| keys.contains(w)))
        .cloned()
        .collect()
}

fn waitpoints_of(wait: &WaitState, keys: &[String]) -> Vec<Waitpoint> {
    keys.iter()
        .filter_map(|key| wait.waitpoint(key).cloned())
        .collect()
}

fn set_state(wait: &mut WaitState, keys: &[String], state: WaitpointState) {
    for key in keys {
        if let Some(waitpoint) = wait.waitpoint_mut(key) {
            waitpoint.state = state;
        }
    }
}
