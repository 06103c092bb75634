//! The loops every periodic service runs. [`service_loop`] repeats a step,
//! pausing for the interval between steps — or going again at once when the
//! step says more work is waiting — and retries a failed step after a
//! growing backoff; it ends only on shutdown. [`scan_loop`] is the step of
//! the maintenance scans: one bounded scan, again at once while it came back
//! full, since a full batch means more is due.

use std::future::Future;
use std::time::Duration;

use ff_core::EngineError;

use crate::backoff::ErrorBackoff;
use crate::shutdown::Signal;
use crate::stats::EngineStats;

/// What a step asks of the loop once it succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// More work is waiting: step again at once.
    Again,
    /// Caught up: wait for the interval.
    Wait,
}

/// Runs `step` until `shutdown`. A step in flight is never cancelled: steps
/// are bounded, and abandoning a write halfway would only leave work for
/// the next node.
pub(crate) async fn service_loop<S, Fut>(
    interval: Duration,
    stats: &EngineStats,
    mut shutdown: Signal,
    mut step: S,
) where
    S: FnMut() -> Fut,
    Fut: Future<Output = Result<Next, EngineError>>,
{
    let mut backoff = ErrorBackoff::default();
    while !shutdown.is_triggered() {
        let wait = match step().await {
            Ok(Next::Again) => {
                backoff.reset();
                Duration::ZERO
            }
            Ok(Next::Wait) => {
                backoff.reset();
                interval
            }
            Err(error) => {
                stats.add_service_error();
                let delay = backoff.next_delay();
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "service step failed; backing off");
                delay
            }
        };
        if wait.is_zero() {
            // Let other tasks run between back-to-back steps.
            tokio::task::yield_now().await;
        } else if !shutdown.sleep(wait).await {
            break;
        }
    }
}

/// How one maintenance service paces its scans.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    pub interval: Duration,
    pub batch: u32,
}

/// Runs `scan(batch)` until `shutdown`; `on_changed` records each result.
pub(crate) async fn scan_loop<S, Fut>(
    pace: Pace,
    stats: &EngineStats,
    shutdown: Signal,
    mut scan: S,
    on_changed: impl Fn(&EngineStats, u32),
) where
    S: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<u32, EngineError>>,
{
    let on_changed = &on_changed;
    service_loop(pace.interval, stats, shutdown, || {
        let scanned = scan(pace.batch);
        async move {
            let changed = scanned.await?;
            if changed > 0 {
                on_changed(stats, changed);
                tracing::debug!(changed, "scan changed executions");
            }
            Ok(if changed >= pace.batch {
                Next::Again
            } else {
                Next::Wait
            })
        }
    })
    .await;
}
