//! Dependency reconciler: the guarantee behind DAG promotion.
//!
//! The completion stream is best-effort, so on every interval this service
//! cascades the outbox entries still undispatched a grace period after their
//! commit — a payload the stream dropped, one whose cascade failed, or one a
//! crash left behind — and then decides blocked nodes whose parents are all
//! terminal. A completion the stream missed is therefore promoted at most
//! `grace + interval` after its commit, and none is lost.
//!
//! The grace keeps the reconciler from racing the listener on entries the
//! stream is about to deliver. Racing would still be safe (a cascade claims
//! its entry atomically; the loser answers `dispatched: false`), only wasted.

use std::sync::Arc;
use std::time::Duration;

use ff_core::{EngineError, FlowOps, MaintenanceOps};
use futures::StreamExt;
use tracing::Instrument;

use crate::cascade::{cascade, Cascaded};
use crate::scan::{service_loop, Next};
use crate::shutdown::Signal;
use crate::stats::EngineStats;

/// Pacing of the reconciler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Pause between passes.
    pub interval: Duration,
    /// How old an undispatched entry must be before the reconciler takes it
    /// from the stream's hands.
    pub grace: Duration,
    /// Most outbox entries read, and blocked nodes decided, per call.
    pub batch: u32,
    /// Most cascades in flight at once.
    pub max_concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            grace: Duration::from_secs(2),
            batch: 500,
            max_concurrency: 16,
        }
    }
}

/// Runs a pass every interval until `shutdown`; a failed pass is retried
/// after a growing backoff.
pub async fn run(
    maintenance: Arc<dyn MaintenanceOps>,
    flows: Arc<dyn FlowOps>,
    config: Config,
    stats: Arc<EngineStats>,
    shutdown: Signal,
) {
    let stop = shutdown.clone();
    let (maintenance, flows, stats) = (&*maintenance, &*flows, &*stats);
    service_loop(config.interval, stats, shutdown, || {
        pass(maintenance, flows, &config, stats, &stop)
            .instrument(tracing::trace_span!("reconcile"))
    })
    .await;
}

/// One pass: drain the overdue outbox, then the stuck blocked nodes. Each
/// call is bounded; a full answer means more is waiting, so the pass goes
/// again at once — unless nothing was dispatched, which would only spin on
/// entries whose cascade keeps failing. A pass drains what it can, so the
/// next one waits for the interval.
async fn pass(
    maintenance: &dyn MaintenanceOps,
    flows: &dyn FlowOps,
    config: &Config,
    stats: &EngineStats,
    shutdown: &Signal,
) -> Result<Next, EngineError> {
    let batch = config.batch.max(1);
    let grace_ms = u64::try_from(config.grace.as_millis()).unwrap_or(u64::MAX);
    loop {
        let overdue = maintenance
            .undispatched_completions(grace_ms, batch)
            .await?;
        let full = overdue.len() >= batch as usize;
        // Built up front: a `map` closure over the stream would make the
        // future's lifetimes higher-ranked, which `Send` checking rejects.
        let cascades: Vec<_> = overdue
            .iter()
            .map(|payload| cascade(flows, stats, payload))
            .collect();
        let results: Vec<Cascaded> = futures::stream::iter(cascades)
            .buffer_unordered(config.max_concurrency.max(1))
            .collect()
            .await;
        let dispatched = results
            .iter()
            .filter(|r| **r == Cascaded::Dispatched)
            .count();
        for _ in 0..dispatched {
            stats.add_reconciled();
        }
        if dispatched > 0 {
            tracing::debug!(
                dispatched,
                read = overdue.len(),
                "dispatched completions the stream missed"
            );
        }
        if !full || dispatched == 0 || shutdown.is_triggered() {
            break;
        }
        tokio::task::yield_now().await;
    }
    loop {
        let decided = maintenance.reconcile_blocked(grace_ms, batch).await?;
        if decided > 0 {
            stats.add_blocked_reconciled(decided);
            tracing::debug!(decided, "decided stuck blocked nodes");
        }
        if decided < batch || shutdown.is_triggered() {
            return Ok(Next::Wait);
        }
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown;
    use crate::test_support::{flow_payload, FakeOutbox};

    fn config(batch: u32) -> Config {
        Config {
            interval: Duration::from_secs(1),
            grace: Duration::from_millis(250),
            batch,
            max_concurrency: 4,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn drains_full_batches_at_once_then_waits_for_the_interval() {
        let outbox = FakeOutbox::new();
        for _ in 0..5 {
            outbox.push(flow_payload());
        }
        outbox.script_blocked([2, 2, 1]);
        let stats = Arc::new(EngineStats::default());
        let (trigger, signal) = shutdown::channel();
        let task = tokio::spawn(run(
            outbox.clone(),
            outbox.clone(),
            config(2),
            stats.clone(),
            signal,
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Batches of 2, 2 and 1 entries; blocked nodes 2, 2 and 1.
        assert_eq!(outbox.reads(), vec![(250, 2); 3]);
        assert_eq!(outbox.reconcile_calls(), 3);
        let snap = stats.snapshot();
        assert_eq!(
            (snap.reconciled, snap.cascades, snap.cascade_promoted),
            (5, 5, 5)
        );
        assert_eq!(snap.blocked_reconciled, 5);

        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(outbox.reads().len(), 4, "the next pass, one interval later");
        assert_eq!(outbox.reconcile_calls(), 4);
        trigger.trigger();
        task.await.expect("service ends cleanly");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_that_fails_waits_for_the_next_pass() {
        let outbox = FakeOutbox::new();
        for _ in 0..4 {
            outbox.push(flow_payload());
        }
        outbox.fail_cascades(true);
        let stats = Arc::new(EngineStats::default());
        let (trigger, signal) = shutdown::channel();
        let task = tokio::spawn(run(
            outbox.clone(),
            outbox.clone(),
            config(2),
            stats.clone(),
            signal,
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(outbox.reads().len(), 1, "no spinning on failing entries");
        assert_eq!(
            outbox.reconcile_calls(),
            1,
            "blocked nodes still reconciled"
        );
        assert_eq!(stats.snapshot().cascade_errors, 2);

        // Once cascades work again, the next pass drains everything.
        outbox.fail_cascades(false);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(outbox.dispatched(), 4);
        assert_eq!(stats.snapshot().reconciled, 4);
        trigger.trigger();
        task.await.expect("service ends cleanly");
    }
}
