//! Lease expiry: fails running executions whose lease or attempt timeout has
//! run out (as retryable `lease_expired` / `attempt_timeout` failures), so
//! work held by a crashed worker is retried. The fencing expiry rule applies
//! the same expiry when the old holder calls in, so this scan only bounds how
//! long a dead lease blocks its execution.

use std::sync::Arc;
use std::time::Duration;

use ff_core::MaintenanceOps;
use tracing::Instrument;

use crate::scan::{scan_loop, Pace};
use crate::shutdown::Signal;
use crate::stats::EngineStats;

/// Pacing of the lease-expiry scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Pause between scans that found less than a full batch.
    pub interval: Duration,
    /// Most executions expired per scan (one backend transaction).
    pub batch: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(200),
            batch: 500,
        }
    }
}

/// Runs until `shutdown`.
pub async fn run(
    ops: Arc<dyn MaintenanceOps>,
    config: Config,
    stats: Arc<EngineStats>,
    shutdown: Signal,
) {
    let pace = Pace {
        interval: config.interval,
        batch: config.batch,
    };
    scan_loop(
        pace,
        &stats,
        shutdown,
        |limit| {
            let ops = ops.clone();
            async move { ops.expire_leases(limit).await }
                .instrument(tracing::trace_span!("expire_leases", limit))
        },
        EngineStats::add_leases_expired,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown;
    use crate::test_support::ScriptedOps;
    use ff_core::EngineError;

    #[tokio::test(start_paused = true)]
    async fn full_batches_rescan_at_once_then_wait_for_the_interval() {
        let ops = ScriptedOps::with_results([Ok(10), Ok(10), Ok(3)]);
        let stats = Arc::new(EngineStats::default());
        let (trigger, signal) = shutdown::channel();
        let config = Config {
            interval: Duration::from_secs(1),
            batch: 10,
        };
        let task = tokio::spawn(run(ops.clone(), config, stats.clone(), signal));
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Two full batches and the short one ran before the first interval.
        assert_eq!(ops.calls(), 3);
        assert_eq!(stats.snapshot().leases_expired, 23);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(ops.calls(), 4);
        trigger.trigger();
        task.await.expect("service ends cleanly");
    }

    #[tokio::test(start_paused = true)]
    async fn errors_back_off_and_the_loop_keeps_going() {
        let ops = ScriptedOps::with_results([
            Err(EngineError::Unavailable {
                message: "down".into(),
            }),
            Err(EngineError::Unavailable {
                message: "still down".into(),
            }),
            Ok(2),
        ]);
        let stats = Arc::new(EngineStats::default());
        let (trigger, signal) = shutdown::channel();
        let config = Config {
            interval: Duration::from_secs(10),
            batch: 10,
        };
        let task = tokio::spawn(run(ops.clone(), config, stats.clone(), signal));
        // Backoff 100 ms then 200 ms: the third call lands at 300 ms.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(ops.calls(), 3);
        let snap = stats.snapshot();
        assert_eq!((snap.service_errors, snap.leases_expired), (2, 2));
        trigger.trigger();
        task.await.expect("service ends cleanly");
    }
}
