//! Completion listener: consumes the backend's completion stream and handles
//! each payload, concurrently but bounded.
//!
//! Today handling a payload means counting it by outcome; the DAG cascade
//! plugs into [`Listener::handle`] (a `cascade_completion` call per payload)
//! without changing the loop. The stream is best-effort — the dependency
//! reconciler reads the durable outbox and is the guarantee — so a payload
//! lost here, or a stream that ends, only delays work: the loop resubscribes
//! after a backoff.

use std::sync::Arc;

use ff_core::{CompletionBackend, CompletionPayload};
use futures::StreamExt;
use tracing::Instrument;

use crate::backoff::ErrorBackoff;
use crate::shutdown::Signal;
use crate::stats::EngineStats;

/// Tuning of the completion listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Most payloads handled at once. Bounds the load one burst of
    /// completions puts on the backend once handling calls it.
    pub max_concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_concurrency: 32,
        }
    }
}

/// What the listener does with each payload.
#[derive(Debug)]
pub struct Listener {
    stats: Arc<EngineStats>,
}

impl Listener {
    pub fn new(stats: Arc<EngineStats>) -> Self {
        Self { stats }
    }

    /// Handles one completion. Never fails: a payload that cannot be handled
    /// is left to the reconciler.
    pub async fn handle(&self, payload: CompletionPayload) {
        tracing::trace!(
            execution_id = %payload.execution_id,
            outcome = %payload.outcome,
            attempt = payload.attempt,
            seq = payload.seq,
            "completion"
        );
        self.stats.add_completion(payload.outcome);
    }
}

/// Runs until `shutdown`, resubscribing whenever the stream ends or cannot
/// be opened.
pub async fn run(
    completions: Arc<dyn CompletionBackend>,
    config: Config,
    stats: Arc<EngineStats>,
    mut shutdown: Signal,
) {
    let listener = Listener::new(stats.clone());
    let concurrency = config.max_concurrency.max(1);
    let mut backoff = ErrorBackoff::default();
    while !shutdown.is_triggered() {
        let subscribed = tokio::select! {
            _ = shutdown.wait() => break,
            subscribed = completions.subscribe_completions() => subscribed,
        };
        match subscribed {
            Ok(stream) => {
                let mut stop = shutdown.clone();
                let heard = std::sync::atomic::AtomicBool::new(false);
                stream
                    .take_until(Box::pin(async move { stop.wait().await }))
                    .for_each_concurrent(concurrency, |payload| {
                        heard.store(true, std::sync::atomic::Ordering::Relaxed);
                        listener.handle(payload)
                    })
                    .instrument(tracing::debug_span!("completion_stream"))
                    .await;
                if shutdown.is_triggered() {
                    break;
                }
                // A stream that delivered is healthy again; one that ends at
                // once keeps growing the pause so a closed backend is not spun on.
                if heard.into_inner() {
                    backoff.reset();
                }
                tracing::debug!("completion stream ended; resubscribing");
            }
            Err(error) => {
                stats.add_service_error();
                tracing::warn!(%error, "cannot subscribe to completions; retrying");
            }
        }
        if !shutdown.sleep(backoff.next_delay()).await {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown;
    use crate::test_support::{payload, ChannelCompletions};
    use ff_core::Outcome;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn counts_outcomes_and_resubscribes_when_the_stream_ends() {
        let completions = ChannelCompletions::new();
        let stats = Arc::new(EngineStats::default());
        let (trigger, signal) = shutdown::channel();
        let task = tokio::spawn(run(
            completions.clone(),
            Config::default(),
            stats.clone(),
            signal,
        ));

        let first = completions.next_subscriber().await;
        for outcome in [Outcome::Completed, Outcome::Completed, Outcome::Failed] {
            first
                .unbounded_send(payload(outcome))
                .expect("listener subscribed");
        }
        drop(first);
        let second = completions.next_subscriber().await;
        second
            .unbounded_send(payload(Outcome::Skipped))
            .expect("listener resubscribed");
        tokio::time::sleep(Duration::from_millis(10)).await;

        let snap = stats.snapshot();
        assert_eq!((snap.completed, snap.failed, snap.skipped), (2, 1, 1));
        trigger.trigger();
        task.await.expect("listener ends cleanly");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_subscription_is_retried() {
        let completions = ChannelCompletions::failing_first(2);
        let stats = Arc::new(EngineStats::default());
        let (trigger, signal) = shutdown::channel();
        let task = tokio::spawn(run(
            completions.clone(),
            Config::default(),
            stats.clone(),
            signal,
        ));
        let sender = completions.next_subscriber().await;
        sender
            .unbounded_send(payload(Outcome::Cancelled))
            .expect("subscribed");
        tokio::time::sleep(Duration::from_millis(10)).await;
        let snap = stats.snapshot();
        assert_eq!((snap.cancelled, snap.service_errors), (1, 2));
        trigger.trigger();
        task.await.expect("listener ends cleanly");
    }
}
