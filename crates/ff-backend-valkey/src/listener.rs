//! The pub/sub connection, to one node at a time (on a cluster `PUBLISH`
//! reaches every node; after a failure the next seed node is tried):
//! completion events from `<prefix>:done` (each message
//! `partition|seq|payload`, published by `ff_v2_apply` in the same call as
//! the transition) and wake-ups from `<prefix>:work`
//! (`partition|namespace|lane`). Wake-ups are hints only; the claim is
//! always the `FCALL`. The connection is re-established on its own after a
//! loss; once subscribed it reads back the entries still undispatched, so
//! what was published meanwhile is cascaded at once rather than after the
//! reconciler's grace, and waiting claims look again.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use ff_backend_support::{CompletionBroadcast, WorkSignal};
use ff_core::{CompletionPayload, Millis};

use crate::conn::Conn;
use crate::hints::Hints;
use crate::keys::Keys;
use crate::maintenance::undispatched;
use crate::row_cache::RowCache;

/// The longest pause between reconnection attempts: completions resume
/// within it of the server's return.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// Entries read back at each (re)subscription, at most.
const CATCH_UP: u32 = 10_000;

/// Tries at reading them back.
const READ_BACK_ATTEMPTS: u32 = 5;

/// What the listener feeds and reads.
pub(crate) struct Listener {
    /// Seed nodes, tried in turn.
    pub(crate) nodes: Vec<String>,
    /// The longest connecting and subscribing may take.
    pub(crate) connect_timeout: Duration,
    /// For reading back undispatched entries.
    pub(crate) conn: Conn,
    pub(crate) keys: Keys,
    pub(crate) completions: CompletionBroadcast,
    pub(crate) hints: Arc<Hints>,
    pub(crate) work: WorkSignal,
    /// Whether it is listening now.
    pub(crate) subscribed: watch::Sender<bool>,
    pub(crate) row_cache: Arc<RowCache>,
}

impl Listener {
    /// Listens until the task is aborted, reconnecting after every loss.
    pub(crate) async fn run(self) {
        let mut backoff = Duration::from_millis(50);
        for url in self.nodes.iter().cycle() {
            let started = tokio::time::Instant::now();
            match self.listen(url).await {
                Ok(()) => tracing::debug!("listener connection closed; reconnecting"),
                Err(error) => tracing::warn!(%error, "listener connection failed; reconnecting"),
            }
            self.subscribed.send_replace(false);
            // The server may have restarted and lost its last writes.
            self.row_cache.forget();
            // Whatever was announced while disconnected is unknown: ask again.
            self.hints.forget();
            self.work.bump();
            if started.elapsed() > MAX_BACKOFF * 2 {
                // It was up a while: this is a fresh failure, retried quickly.
                backoff = Duration::from_millis(50);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn listen(&self, url: &str) -> redis::RedisResult<()> {
        let done = self.keys.done_channel();
        let client = redis::Client::open(url)?;
        // A node that accepts nothing (rather than refusing) must not hold
        // the listener past the connect timeout.
        let setup = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&done).await?;
            pubsub.subscribe(self.keys.work_channel()).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::time::timeout(self.connect_timeout * 2, setup)
            .await
            .map_err(|_| {
                redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "subscribing timed out",
                ))
            })??;
        self.subscribed.send_replace(true);
        self.read_back().await;
        // Wake the claims, which may have missed a hint meanwhile.
        self.hints.forget();
        self.work.bump();
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            let Ok(text) = msg.get_payload::<String>() else {
                continue;
            };
            if msg.get_channel_name() == done {
                match parse_completion(&text) {
                    Some(payload) => self.completions.send(payload),
                    None => tracing::warn!(message = text, "unreadable completion message"),
                }
            } else {
                self.wake(&text);
            }
        }
        Ok(())
    }

    /// Publishes the entries still undispatched: those published while no
    /// one listened among them. The command connection may still be
    /// reconnecting (a server just restarted), so a failed read is tried
    /// again a few times; the reconciler covers what this misses.
    async fn read_back(&self) {
        for attempt in 1..=READ_BACK_ATTEMPTS {
            match undispatched(&self.conn, &self.keys, Millis::MAX, CATCH_UP).await {
                Ok(pending) => {
                    pending.into_iter().for_each(|p| self.completions.send(p));
                    return;
                }
                Err(error) if attempt < READ_BACK_ATTEMPTS => {
                    tracing::debug!(%error, "reading back undispatched completions; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => {
                    tracing::warn!(%error, "could not read back undispatched completions");
                }
            }
        }
    }

    /// A wake-up, `partition|namespace|lane`.
    fn wake(&self, text: &str) {
        let mut parts = text.splitn(3, '|');
        match (
            parts.next().and_then(|p| p.parse().ok()),
            parts.next(),
            parts.next(),
        ) {
            (Some(p), Some(namespace), Some(lane)) => self.hints.wake(namespace, lane, p),
            _ => self.hints.forget(),
        }
        self.work.bump();
    }
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
