//! The pub/sub connection, to one node (on a cluster `PUBLISH` reaches every
//! node; after a failure the next seed node is tried): completion events from `<prefix>:done` (each
//! message `partition|seq|payload`, published by `ff_v1_apply` in the same
//! call as the transition) and wake-ups from `<prefix>:work` (`partition|
//! namespace|lane`). Wake-ups are hints only; the claim is always the
//! `FCALL`. The connection is re-established on its own after a loss; what
//! was published meanwhile is found by the reconciler (completions) and by
//! the waiting claims' periodic recheck (work).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use ff_core::CompletionPayload;

use ff_backend_support::{CompletionBroadcast, WorkSignal};

use crate::hints::Hints;
use crate::keys::Keys;
use crate::leased::Leased;

/// The longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(crate) async fn run(
    nodes: Vec<String>,
    keys: Keys,
    completions: CompletionBroadcast,
    hints: Arc<Hints>,
    work: WorkSignal,
    subscribed: watch::Sender<bool>,
    leased: Arc<Leased>,
) {
    let done = keys.done_channel();
    let wake = keys.work_channel();
    let mut backoff = Duration::from_millis(50);
    for url in nodes.iter().cycle() {
        let started = tokio::time::Instant::now();
        match listen(url, &done, &wake, &completions, &hints, &work, &subscribed).await {
            Ok(()) => tracing::debug!("subscriber connection closed; reconnecting"),
            Err(error) => tracing::warn!(%error, "subscriber connection failed; reconnecting"),
        }
        subscribed.send_replace(false);
        // The server may have restarted and lost its last writes.
        leased.forget();
        // Whatever was announced while disconnected is unknown: ask again.
        hints.forget();
        work.bump();
        if started.elapsed() > MAX_BACKOFF * 2 {
            // It was up a while: this is a fresh failure, retried quickly.
            backoff = Duration::from_millis(50);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn listen(
    url: &str,
    done: &str,
    wake: &str,
    completions: &CompletionBroadcast,
    hints: &Hints,
    work: &WorkSignal,
    subscribed: &watch::Sender<bool>,
) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(done).await?;
    pubsub.subscribe(wake).await?;
    subscribed.send_replace(true);
    // Subscribed: wake the claims, which may have missed a hint meanwhile.
    hints.forget();
    work.bump();
    let mut messages = pubsub.into_on_message();
    while let Some(msg) = messages.next().await {
        let Ok(text) = msg.get_payload::<String>() else {
            continue;
        };
        if msg.get_channel_name() == done {
            match parse_completion(&text) {
                Some(payload) => completions.send(payload),
                None => tracing::warn!(message = text, "unreadable completion message"),
            }
        } else {
            let mut parts = text.splitn(3, '|');
            match (
                parts.next().and_then(|p| p.parse().ok()),
                parts.next(),
                parts.next(),
            ) {
                (Some(p), Some(namespace), Some(lane)) => hints.wake(namespace, lane, p),
                _ => hints.forget(),
            }
            work.bump();
        }
    }
    Ok(())
}

/// Reads `partition|seq|payload`.
fn parse_completion(text: &str) -> Option<CompletionPayload> {
    let mut parts = text.splitn(3, '|');
    let partition = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let mut payload: CompletionPayload = serde_json::from_str(parts.next()?).ok()?;
    payload.partition = partition;
    payload.seq = seq;
    Some(payload)
}
