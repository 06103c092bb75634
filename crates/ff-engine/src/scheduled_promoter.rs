//! Scheduled promoter: moves scheduled executions whose time has come
//! (`run_at` or a retry backoff) to ready and wakes waiting workers. Its
//! interval bounds how late a delayed execution or a retry starts.

use std::sync::Arc;
use std::time::Duration;

use ff_core::MaintenanceOps;
use tracing::Instrument;

use crate::scan::{scan_loop, Pace};
use crate::shutdown::Signal;
use crate::stats::EngineStats;

/// Pacing of the promotion scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Pause between scans that found less than a full batch.
    pub interval: Duration,
    /// Most executions promoted per scan (one backend transaction).
    pub batch: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(100),
            batch: 1000,
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
            async move { ops.promote_scheduled(limit).await }
                .instrument(tracing::trace_span!("promote_scheduled", limit))
        },
        EngineStats::add_scheduled_promoted,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown;
    use crate::test_support::ScriptedOps;

    #[tokio::test(start_paused = true)]
    async fn promotes_on_every_interval_until_shutdown() {
        let ops = ScriptedOps::with_results([Ok(1), Ok(0), Ok(4)]);
        let stats = Arc::new(EngineStats::default());
        let (trigger, signal) = shutdown::channel();
        let task = tokio::spawn(run(ops.clone(), Config::default(), stats.clone(), signal));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(ops.calls(), 3, "at 0, 100 and 200 ms");
        assert_eq!(stats.snapshot().scheduled_promoted, 5);
        trigger.trigger();
        task.await.expect("service ends cleanly");
        let after = ops.calls();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(ops.calls(), after, "no scan after shutdown");
    }
}
