//! Completion listener: consumes the backend's completion stream and
//! cascades each payload through its flow, concurrently but bounded.
//!
//! Payloads that are already waiting when a cascade slot frees up go to the
//! backend together, in one `cascade_completions` call (each still its own
//! atomic step). A backend that serializes its writes then takes a burst of
//! completions in one turn instead of queueing a cascade per payload behind
//! other work, which is what keeps promotion lag low under load.
//!
//! This is the fast path of promotion: a child becomes claimable as soon as
//! its parent's completion is heard, so promotion lag is push-speed. The
//! stream is best-effort — the dependency reconciler reads the durable
//! outbox and is the guarantee — so a payload lost here, a cascade that
//! fails, or a stream that ends only delays work: the loop resubscribes after
//! a backoff and the reconciler picks up whatever was not dispatched.
//!
//! Every payload is cascaded, solo executions included: the cascade is what
//! marks the outbox entry dispatched, which keeps the reconciler from reading
//! it again and lets the outbox trim delete it.

use std::sync::Arc;

use ff_core::{CompletionBackend, CompletionPayload, FlowOps};
use futures::StreamExt;
use tracing::Instrument;

use crate::backoff::ErrorBackoff;
use crate::cascade::cascade_all;
use crate::shutdown::Signal;
use crate::stats::EngineStats;

/// Tuning of the completion listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Most `cascade_completions` calls in flight at once. Bounds the load
    /// one burst of completions puts on the backend.
    pub max_concurrency: usize,
    /// Most payloads handed to one call: those already waiting, up to this.
    pub max_batch: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_concurrency: 128,
            max_batch: 256,
        }
    }
}

/// What the listener does with each payload.
pub struct Listener {
    flows: Arc<dyn FlowOps>,
    stats: Arc<EngineStats>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

impl Listener {
    pub fn new(flows: Arc<dyn FlowOps>, stats: Arc<EngineStats>) -> Self {
        Self { flows, stats }
    }

    /// Counts the completions and cascades them in one call. Never fails: a
    /// payload that cannot be cascaded stays undispatched for the reconciler.
    pub async fn handle(&self, payloads: Vec<CompletionPayload>) {
        for payload in &payloads {
            tracing::trace!(
                execution_id = %payload.execution_id,
                outcome = %payload.outcome,
                attempt = payload.attempt,
                seq = payload.seq,
                "completion"
            );
            self.stats.add_completion(payload.outcome);
        }
        cascade_all(&*self.flows, &self.stats, &payloads).await;
    }
}

/// Runs until `shutdown`, resubscribing whenever the stream ends or cannot
/// be opened.
pub async fn run(
    completions: Arc<dyn CompletionBackend>,
    flows: Arc<dyn FlowOps>,
    config: Config,
    stats: Arc<EngineStats>,
    mut shutdown: Signal,
) {
    let listener = Listener::new(flows, stats.clone());
    let concurrency = config.max_concurrency.max(1);
    let max_batch = config.max_batch.max(1);
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
                    .ready_chunks(max_batch)
                    .for_each_concurrent(concurrency, |payloads| {
                        heard.store(true, std::sync::atomic::Ordering::Relaxed);
                        listener.handle(payloads)
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
    use crate::test_support::{flow_payload, payload, ChannelCompletions, FakeOutbox};
    use ff_core::Outcome;
    use std::time::Duration;
    use tokio::task::JoinHandle;

    /// A listener running on `completions` and `outbox`.
    struct Listening {
        stats: Arc<EngineStats>,
        trigger: shutdown::Trigger,
        task: JoinHandle<()>,
    }

    fn listen(
        completions: &Arc<ChannelCompletions>,
        outbox: &Arc<FakeOutbox>,
        config: Config,
    ) -> Listening {
        let stats = Arc::new(EngineStats::default());
        let (trigger, signal) = shutdown::channel();
        let task = tokio::spawn(run(
            completions.clone(),
            outbox.clone(),
            config,
            stats.clone(),
            signal,
        ));
        Listening {
            stats,
            trigger,
            task,
        }
    }

    impl Listening {
        async fn stop(self) {
            self.trigger.trigger();
            self.task.await.expect("listener ends cleanly");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn counts_outcomes_and_resubscribes_when_the_stream_ends() {
        let completions = ChannelCompletions::new();
        let outbox = FakeOutbox::new();
        let listening = listen(&completions, &outbox, Config::default());
        let stats = &listening.stats;

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
        // Solo executions are cascaded too: that dispatches their entries.
        assert_eq!((snap.cascades, outbox.dispatched()), (4, 4));
        listening.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_subscription_is_retried() {
        let completions = ChannelCompletions::failing_first(2);
        let listening = listen(&completions, &FakeOutbox::new(), Config::default());
        let stats = &listening.stats;
        let sender = completions.next_subscriber().await;
        sender
            .unbounded_send(payload(Outcome::Cancelled))
            .expect("subscribed");
        tokio::time::sleep(Duration::from_millis(10)).await;
        let snap = stats.snapshot();
        assert_eq!((snap.cancelled, snap.service_errors), (1, 2));
        listening.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn cascades_record_promotions_and_their_lag_once() {
        let completions = ChannelCompletions::new();
        let outbox = FakeOutbox::new();
        outbox.set_lag_ms(3);
        let listening = listen(&completions, &outbox, Config::default());
        let stats = &listening.stats;
        let sender = completions.next_subscriber().await;
        let member = flow_payload();
        for p in [member.clone(), flow_payload(), payload(Outcome::Completed)] {
            sender.unbounded_send(p).expect("subscribed");
        }
        // A duplicate delivery is a no-op, counted nowhere.
        sender.unbounded_send(member).expect("subscribed");
        tokio::time::sleep(Duration::from_millis(10)).await;

        let snap = stats.snapshot();
        assert_eq!((snap.cascades, snap.cascade_promoted), (3, 2));
        let lag = snap.promotion_lag;
        assert_eq!((lag.count, lag.sum_ms), (2, 6), "only promoting cascades");
        assert_eq!(lag.buckets[3], 2, "3 ms lands in (2, 5]");
        listening.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn cascades_run_at_most_max_concurrency_at_once() {
        let completions = ChannelCompletions::new();
        let outbox = FakeOutbox::new();
        // Batches of one, so every payload is a call of its own.
        let config = Config {
            max_concurrency: 3,
            max_batch: 1,
        };
        let listening = listen(&completions, &outbox, config);
        let stats = &listening.stats;
        let sender = completions.next_subscriber().await;
        for _ in 0..20 {
            sender.unbounded_send(flow_payload()).expect("subscribed");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(stats.snapshot().cascades, 20);
        assert_eq!(outbox.max_in_flight(), 3);
        listening.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_payloads_go_to_the_backend_together() {
        let completions = ChannelCompletions::new();
        let outbox = FakeOutbox::new();
        let config = Config {
            max_batch: 8,
            ..Config::default()
        };
        let listening = listen(&completions, &outbox, config);
        let stats = &listening.stats;
        let sender = completions.next_subscriber().await;
        for _ in 0..20 {
            sender.unbounded_send(flow_payload()).expect("subscribed");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        sender.unbounded_send(flow_payload()).expect("subscribed");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(outbox.batches(), vec![8, 8, 4, 1]);
        let snap = stats.snapshot();
        assert_eq!((snap.completed, snap.cascades), (21, 21));
        listening.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_cascade_is_counted_and_left_undispatched() {
        let completions = ChannelCompletions::new();
        let outbox = FakeOutbox::new();
        outbox.fail_cascades(true);
        let listening = listen(&completions, &outbox, Config::default());
        let stats = &listening.stats;
        let sender = completions.next_subscriber().await;
        sender.unbounded_send(flow_payload()).expect("subscribed");
        tokio::time::sleep(Duration::from_millis(10)).await;
        outbox.fail_cascades(false);
        sender
            .unbounded_send(flow_payload())
            .expect("still subscribed");
        tokio::time::sleep(Duration::from_millis(10)).await;

        let snap = stats.snapshot();
        assert_eq!((snap.completed, snap.cascade_errors), (2, 1));
        assert_eq!((snap.cascades, outbox.dispatched()), (1, 1));
        listening.stop().await;
    }
}
