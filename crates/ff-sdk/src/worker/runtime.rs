//! The worker runtime: one claim loop and one task per claimed execution.
//!
//! The claim loop holds a semaphore of `concurrency` permits and claims as
//! many executions as it holds free permits (at least one), so a worker never
//! holds a lease it has no slot to run. Each execution's task runs the handler
//! in a task of its own, renews the lease every third of its length, and
//! reports how the handler ended. A renewal answered `NotActive` or
//! `LeaseLost` means the attempt no longer counts: the handler is told
//! ([`StopReason`]) and aborted.
//!
//! Shutdown moves a shared phase from `Running` to `Draining` (no more
//! claims; handlers are told) and, once the grace is over, to `Aborting`
//! (handlers aborted, leases released). A claim in flight when the shutdown
//! began is awaited, never dropped (the engine may have granted it), and
//! whatever it brings in is released at once; it may bring back an execution
//! a handler of this worker has just released, which then shows two
//! releases of the same attempt.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ff_core::suspension::{Signal, SuspendResponse};
use ff_core::{Claimed, EngineError, Failure, JsonText, LeaseHandle, Limits, State};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::Instrument;

use super::handler::{
    error_chain, BoxHandler, Control, HandlerError, JobContext, StopReason, Suspend,
};
use super::WorkerStats;
use crate::Client;

/// Where the whole worker stands; only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Running,
    /// No more claims; running handlers are asked to stop.
    Draining,
    /// The grace is over: abort handlers, release their leases.
    Aborting,
}

/// What the claim loop and every execution task share.
pub(crate) struct Shared {
    pub client: Client,
    /// Validated; `n` is set per claim.
    pub claim: ff_core::ClaimRequest,
    pub concurrency: usize,
    pub claim_wait: Duration,
    pub shutdown_grace: Duration,
    pub cancel_grace: Duration,
    pub handlers: HashMap<String, BoxHandler>,
    pub fallback: Option<BoxHandler>,
    /// The handled kinds, sorted, for the unknown-kind error.
    pub kinds: Vec<String>,
    pub phase: watch::Sender<Phase>,
    pub tally: Tally,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("claim", &self.claim)
            .field("concurrency", &self.concurrency)
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

/// Live counters behind [`WorkerStats`].
#[derive(Debug, Default)]
pub(crate) struct Tally {
    claimed: AtomicU64,
    completed: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    released: AtomicU64,
    suspended: AtomicU64,
    abandoned: AtomicU64,
    errors: AtomicU64,
}

impl Tally {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            claimed: get(&self.claimed),
            completed: get(&self.completed),
            retried: get(&self.retried),
            failed: get(&self.failed),
            released: get(&self.released),
            suspended: get(&self.suspended),
            abandoned: get(&self.abandoned),
            errors: get(&self.errors),
        }
    }
}

/// Resolves once the worker leaves `Running`.
async fn draining(phase: &mut watch::Receiver<Phase>) {
    // The sender lives in `Shared`, which the caller holds: never an error.
    let _ = phase.wait_for(|p| *p >= Phase::Draining).await;
}

/// The claim loop, then the shutdown sequence.
pub(crate) async fn run(shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(shared.concurrency));
    let mut jobs = JoinSet::new();
    let mut phase = shared.phase.subscribe();
    let mut in_flight = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        while jobs.try_join_next().is_some() {}
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => permit,
            () = draining(&mut phase) => break,
        };
        let Ok(first) = first else { break };
        let mut permits = vec![first];
        while let Ok(permit) = slots.clone().try_acquire_owned() {
            permits.push(permit);
        }
        let req = shared.claim.clone().max(permits.len() as u32);
        let (client, wait) = (shared.client.clone(), shared.claim_wait);
        // In a task of its own, so a shutdown need not wait for it here.
        let mut claim = tokio::spawn(async move { client.transport().claim(&req, wait).await });
        let claimed = tokio::select! {
            joined = &mut claim => flatten(joined),
            () = draining(&mut phase) => {
                in_flight = Some(claim);
                break;
            }
        };
        match claimed {
            Ok(list) => {
                backoff = Duration::from_millis(100);
                Tally::add(&shared.tally.claimed, list.len() as u64);
                for claimed in list {
                    match permits.pop() {
                        Some(permit) => {
                            jobs.spawn(run_job(shared.clone(), claimed, permit));
                        }
                        // More than asked for: not ours to run.
                        None => {
                            report(
                                &shared,
                                &claimed.namespace,
                                &claimed.handle,
                                Verdict::Release,
                            )
                            .await
                        }
                    }
                }
            }
            Err(err) => {
                Tally::add(&shared.tally.errors, 1);
                tracing::warn!(%err, "claim failed; retrying in {backoff:?}");
                drop(permits);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = draining(&mut phase) => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }

    // Draining. Each execution task has seen the phase and told its handler.
    let leftover = in_flight.map(|claim| tokio::spawn(release_late_claim(shared.clone(), claim)));
    let grace = tokio::time::timeout(shared.shutdown_grace, join_all(&mut jobs)).await;
    if grace.is_err() {
        tracing::info!(
            running = jobs.len(),
            "shutdown grace over: aborting handlers and releasing their leases"
        );
        shared.phase.send_replace(Phase::Aborting);
        join_all(&mut jobs).await;
    }
    if let Some(leftover) = leftover {
        let _ = leftover.await;
    }
}

async fn join_all(jobs: &mut JoinSet<()>) {
    while jobs.join_next().await.is_some() {}
}

fn flatten<T>(joined: Result<Result<T, EngineError>, JoinError>) -> Result<T, EngineError> {
    joined.map_err(EngineError::backend).and_then(|r| r)
}

/// A claim that was in flight when the shutdown began: whatever it brought
/// in goes straight back.
async fn release_late_claim(
    shared: Arc<Shared>,
    claim: JoinHandle<Result<Vec<Claimed>, EngineError>>,
) {
    if let Ok(list) = flatten(claim.await) {
        for claimed in list {
            Tally::add(&shared.tally.claimed, 1);
            report(
                &shared,
                &claimed.namespace,
                &claimed.handle,
                Verdict::Release,
            )
            .await;
        }
    }
}

/// Runs one claimed execution to its report, holding its slot meanwhile.
async fn run_job(shared: Arc<Shared>, claimed: Claimed, _slot: OwnedSemaphorePermit) {
    let span = tracing::info_span!(
        "execution",
        id = %claimed.handle.execution_id,
        attempt = claimed.handle.attempt,
        kind = %claimed.kind
    );
    run_attempt(shared, Arc::new(claimed))
        .instrument(span)
        .await;
}

async fn run_attempt(shared: Arc<Shared>, mut claimed: Arc<Claimed>) {
    let (handle, ns) = (claimed.handle.clone(), claimed.namespace.clone());
    let Some(handler) = shared
        .handlers
        .get(&claimed.kind)
        .or(shared.fallback.as_ref())
        .cloned()
    else {
        let error = format!(
            "no handler for kind `{}` on this worker (it handles: {})",
            claimed.kind,
            shared.kinds.join(", ")
        );
        tracing::warn!("{error}");
        report(
            &shared,
            &ns,
            &handle,
            Verdict::Fail(Failure::permanent(error)),
        )
        .await;
        return;
    };

    let (stop_tx, stop_rx) = watch::channel(None);
    let ctx = JobContext::new(
        claimed.clone(),
        shared.client.with_namespace(&ns),
        stop_rx.clone(),
    );
    let mut task = tokio::spawn(handler(ctx));
    let every = Duration::from_millis((claimed.lease_ms / 3).max(10));
    let mut renew = tokio::time::interval_at(Instant::now() + every, every);
    // Suspension keys answered `AlreadySatisfied` under this lease: the
    // same one again means the handler ignores its signals.
    let mut satisfied_keys: Vec<String> = Vec::new();
    renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut phase = shared.phase.subscribe();
    loop {
        let current = *phase.borrow_and_update();
        match current {
            Phase::Running => {}
            Phase::Draining => {
                stop_tx.send_if_modified(|stop| {
                    let first = stop.is_none();
                    if first {
                        *stop = Some(StopReason::Shutdown);
                    }
                    first
                });
            }
            Phase::Aborting => {
                task.abort();
                let _ = task.await;
                report(&shared, &ns, &handle, Verdict::Release).await;
                return;
            }
        }
        tokio::select! {
            joined = &mut task => {
                let suspend = match verdict(joined) {
                    Ok(verdict) => {
                        report(&shared, &ns, &handle, verdict).await;
                        return;
                    }
                    Err(suspend) => suspend,
                };
                let key = suspend.request().key.clone();
                if satisfied_keys.contains(&key) {
                    let error = format!(
                        "the handler suspended again on `{key}` after its signals arrived; \
                         check ctx.signals() before suspending"
                    );
                    report(&shared, &ns, &handle, Verdict::Fail(Failure::permanent(error))).await;
                    return;
                }
                let Some(signals) = suspend_attempt(&shared, &ns, &handle, &suspend).await else {
                    return;
                };
                satisfied_keys.push(key);
                // Already satisfied: the lease is still this worker's, so
                // the handler runs again at once with the signals.
                let mut again = (*claimed).clone();
                for signal in signals {
                    if !again.signals.iter().any(|s| s.id == signal.id) {
                        again.signals.push(signal);
                    }
                }
                claimed = Arc::new(again);
                let ctx = JobContext::new(
                    claimed.clone(),
                    shared.client.with_namespace(&ns),
                    stop_rx.clone(),
                );
                task = tokio::spawn(handler(ctx));
            }
            _ = renew.tick() => {
                let reason = match shared.client.transport().renew(&ns, &handle).await {
                    Ok(_) => continue,
                    Err(EngineError::NotActive { outcome }) => StopReason::Cancelled { outcome },
                    Err(EngineError::LeaseLost | EngineError::NotFound { .. }) => {
                        StopReason::LeaseLost
                    }
                    Err(err) => {
                        // Transient: the next renewal may succeed before the
                        // lease runs out.
                        Tally::add(&shared.tally.errors, 1);
                        tracing::warn!(%err, "lease renewal failed; retrying");
                        continue;
                    }
                };
                tracing::info!(?reason, "stopping the handler: the attempt no longer counts");
                stop_tx.send_replace(Some(reason));
                let finished = !shared.cancel_grace.is_zero()
                    && tokio::time::timeout(shared.cancel_grace, &mut task).await.is_ok();
                if !finished {
                    task.abort();
                    let _ = task.await;
                }
                Tally::add(&shared.tally.abandoned, 1);
                return;
            }
            // The sender lives in `shared`, held here: never an error.
            _ = phase.changed() => {}
        }
    }
}

/// How an attempt ended, as reported.
#[derive(Debug)]
enum Verdict {
    Complete(JsonText),
    Fail(Failure),
    Release,
}

/// How the handler ended: a verdict to report, or a suspension.
fn verdict(joined: Result<Result<JsonText, HandlerError>, JoinError>) -> Result<Verdict, Suspend> {
    Ok(match joined {
        Ok(Ok(result)) => Verdict::Complete(result),
        Ok(Err(HandlerError(control))) => match control {
            Control::Retry(retry) => {
                if let Some(delay) = retry.requested_delay() {
                    tracing::debug!(
                        ?delay,
                        "the handler asked for a retry delay; the retry policy decides"
                    );
                }
                Verdict::Fail(Failure::retryable(retry.reason))
            }
            Control::Fail(fail) => Verdict::Fail(Failure::permanent(fail.error)),
            Control::Error(err) => Verdict::Fail(Failure::retryable(error_chain(err.as_ref()))),
            Control::Release => Verdict::Release,
            Control::Suspend(suspend) => return Err(suspend),
        },
        Err(err) if err.is_panic() => {
            let panic = err.into_panic();
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic".to_owned());
            Verdict::Fail(Failure::retryable(format!(
                "the handler panicked: {message}"
            )))
        }
        // Aborted by someone else than this runtime: hand it back.
        Err(_) => Verdict::Release,
    })
}

/// Cuts an error to the stored limit, on a character boundary.
fn truncate_error(mut failure: Failure) -> Failure {
    let max = Limits::default().max_error_bytes;
    if failure.error.len() > max {
        let mut cut = max - 3;
        while !failure.error.is_char_boundary(cut) {
            cut -= 1;
        }
        failure.error.truncate(cut);
        failure.error.push_str("...");
    }
    failure
}

/// Suspends the attempt, retrying transient errors a few times. Answers the
/// signals to run the handler again with when they already satisfy the
/// condition (the lease kept), `None` when the attempt is over here:
/// suspended, or refused (reported as a failure, or the lease gone).
async fn suspend_attempt(
    shared: &Shared,
    ns: &str,
    handle: &LeaseHandle,
    suspend: &Suspend,
) -> Option<Vec<Signal>> {
    let transport = shared.client.transport();
    let tally = &shared.tally;
    let mut pause = Duration::from_millis(100);
    for _ in 0..6 {
        match transport.suspend(ns, handle, suspend.request()).await {
            Ok(SuspendResponse::Suspended { .. }) => {
                Tally::add(&tally.suspended, 1);
                return None;
            }
            Ok(SuspendResponse::AlreadySatisfied { signals }) => return Some(signals),
            Err(
                EngineError::LeaseLost
                | EngineError::NotActive { .. }
                | EngineError::NotFound { .. },
            ) => {
                tracing::info!("suspend refused: the attempt no longer holds the lease");
                Tally::add(&tally.abandoned, 1);
                return None;
            }
            Err(err @ (EngineError::Invalid { .. } | EngineError::Conflict { .. })) => {
                let failure =
                    Failure::permanent(format!("the handler's suspend was refused: {err}"));
                report(shared, ns, handle, Verdict::Fail(failure)).await;
                return None;
            }
            Err(err) => {
                Tally::add(&tally.errors, 1);
                tracing::warn!(%err, "suspend failed; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
    tracing::error!("giving up on the suspend; handing the execution back");
    report(shared, ns, handle, Verdict::Release).await;
    None
}

/// Reports a verdict, retrying transient errors a few times; a report the
/// engine refuses for the lease (`LeaseLost`, `NotActive`) is dropped: another
/// outcome was recorded.
async fn report(shared: &Shared, ns: &str, handle: &LeaseHandle, mut verdict: Verdict) {
    let transport = shared.client.transport();
    let tally = &shared.tally;
    let mut pause = Duration::from_millis(100);
    for _ in 0..6 {
        let sent = match &verdict {
            Verdict::Complete(result) => transport
                .complete(ns, handle, result.clone())
                .await
                .map(|_| &tally.completed),
            Verdict::Fail(failure) => transport
                .fail(ns, handle, truncate_error(failure.clone()))
                .await
                .map(|resp| {
                    if resp.state == State::Scheduled {
                        &tally.retried
                    } else {
                        &tally.failed
                    }
                }),
            Verdict::Release => transport
                .release(ns, handle)
                .await
                .map(|()| &tally.released),
        };
        let err = match sent {
            Ok(counter) => {
                Tally::add(counter, 1);
                return;
            }
            Err(err) => err,
        };
        match (err, &verdict) {
            (EngineError::LeaseLost | EngineError::NotActive { .. }, _) => {
                tracing::info!("report refused: the attempt no longer holds the lease");
                Tally::add(&tally.abandoned, 1);
                return;
            }
            // A result the engine refuses (too large, not JSON) will never
            // be accepted: fail for good, saying why.
            (EngineError::Invalid { field, message }, Verdict::Complete(_)) => {
                verdict = Verdict::Fail(Failure::permanent(format!(
                    "the handler's result was refused: invalid {field}: {message}"
                )));
            }
            // Released too often: let the retry policy decide instead.
            (EngineError::Conflict { message }, Verdict::Release) => {
                verdict = Verdict::Fail(Failure::retryable(format!(
                    "could not hand the execution back: {message}"
                )));
            }
            (err @ (EngineError::Invalid { .. } | EngineError::NotFound { .. }), _) => {
                Tally::add(&tally.errors, 1);
                tracing::error!(%err, ?verdict, "report refused");
                return;
            }
            (err, _) => {
                Tally::add(&tally.errors, 1);
                tracing::warn!(%err, "report failed; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
    tracing::error!(
        ?verdict,
        "giving up on the report; the lease will expire and the execution be retried"
    );
}
