//! The loop shared by the maintenance services: run one bounded scan, then
//! sleep for the interval — or go again at once while the scan came back
//! full, since a full batch means more work is waiting. Errors are logged
//! and retried after a growing backoff; the loop ends only on shutdown.

use std::future::Future;
use std::time::Duration;

use ff_core::EngineError;

use crate::backoff::ErrorBackoff;
use crate::shutdown::Signal;
use crate::stats::EngineStats;

/// How one maintenance service paces its scans.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    pub interval: Duration,
    pub batch: u32,
}

/// Runs `scan(batch)` until `shutdown`; `on_changed` records each result.
/// A scan in flight is never cancelled: it is bounded, and abandoning a
/// write halfway would only leave work for the next node.
pub(crate) async fn scan_loop<S, Fut>(
    pace: Pace,
    stats: &EngineStats,
    mut shutdown: Signal,
    mut scan: S,
    on_changed: impl Fn(&EngineStats, u32),
) where
    S: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<u32, EngineError>>,
{
    let mut backoff = ErrorBackoff::default();
    while !shutdown.is_triggered() {
        let wait = match scan(pace.batch).await {
            Ok(changed) => {
                backoff.reset();
                if changed > 0 {
                    on_changed(stats, changed);
                    tracing::debug!(changed, "scan changed executions");
                }
                if changed >= pace.batch {
                    Duration::ZERO
                } else {
                    pace.interval
                }
            }
            Err(error) => {
                stats.add_service_error();
                let delay = backoff.next_delay();
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "scan failed; backing off");
                delay
            }
        };
        if wait.is_zero() {
            // Let other tasks run between back-to-back full batches.
            tokio::task::yield_now().await;
        } else if !shutdown.sleep(wait).await {
            break;
        }
    }
}
