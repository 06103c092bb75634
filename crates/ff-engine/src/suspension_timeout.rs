//! Suspension timeout: applies the timeout policy of suspended executions
//! whose timeout has passed (`fail`, `cancel`, or `resume` with a
//! `timeout` signal), in bounded batches. A resume wakes waiting claims
//! through the backend's own push, like any other transition to ready.

use std::sync::Arc;
use std::time::Duration;

use ff_core::MaintenanceOps;
use tracing::Instrument;

use crate::scan::{scan_loop, Pace};
use crate::shutdown::Signal;
use crate::stats::EngineStats;

/// Pacing of the suspension timeout scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Pause between scans that found less than a full batch.
    pub interval: Duration,
    /// Most suspensions timed out per scan.
    pub batch: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
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
            async move { ops.expire_suspensions(limit).await }
                .instrument(tracing::trace_span!("expire_suspensions", limit))
        },
        EngineStats::add_suspensions_timed_out,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown;
    use crate::test_support::ScriptedOps;

    #[tokio::test(start_paused = true)]
    async fn scans_once_per_second() {
        let ops = ScriptedOps::with_results([Ok(2)]);
        let stats = Arc::new(EngineStats::default());
        let (trigger, signal) = shutdown::channel();
        let task = tokio::spawn(run(ops.clone(), Config::default(), stats.clone(), signal));
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!(ops.calls(), 3);
        assert_eq!(stats.snapshot().suspensions_timed_out, 2);
        trigger.trigger();
        task.await.expect("service ends cleanly");
    }
}
