//! Outbox trim: deletes dispatched completion entries once they are old
//! enough, so the outbox holds only recent history and what is still owed.
//! Undispatched entries are never trimmed: they are the reconciler's record.
//! Keeping dispatched ones a while leaves them readable for debugging and
//! for anyone replaying recent completions.

use std::sync::Arc;
use std::time::Duration;

use ff_core::MaintenanceOps;
use tracing::Instrument;

use crate::scan::{scan_loop, Pace};
use crate::shutdown::Signal;
use crate::stats::EngineStats;

/// Pacing of the trim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Pause between trims that found less than a full batch.
    pub interval: Duration,
    /// How long a dispatched entry is kept after its commit.
    pub keep: Duration,
    /// Most entries deleted per call (one backend transaction).
    pub batch: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            keep: Duration::from_secs(10 * 60),
            batch: 5_000,
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
    let keep_ms = u64::try_from(config.keep.as_millis()).unwrap_or(u64::MAX);
    scan_loop(
        pace,
        &stats,
        shutdown,
        |limit| {
            let ops = ops.clone();
            async move { ops.trim_outbox(keep_ms, limit).await }.instrument(tracing::trace_span!(
                "trim_outbox",
                keep_ms,
                limit
            ))
        },
        EngineStats::add_outbox_trimmed,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown;
    use crate::test_support::ScriptedOps;

    #[tokio::test(start_paused = true)]
    async fn trims_full_batches_at_once_then_every_interval() {
        let ops = ScriptedOps::with_results([Ok(5_000), Ok(7), Ok(3)]);
        let stats = Arc::new(EngineStats::default());
        let (trigger, signal) = shutdown::channel();
        let task = tokio::spawn(run(ops.clone(), Config::default(), stats.clone(), signal));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(ops.calls(), 2, "a full batch goes again at once");
        assert_eq!(stats.snapshot().outbox_trimmed, 5_007);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(ops.calls(), 3);
        assert_eq!(stats.snapshot().outbox_trimmed, 5_010);
        trigger.trigger();
        task.await.expect("service ends cleanly");
    }
}
