//! [`CompletionBroadcast`]: committed completions fanned out to every open
//! `subscribe_completions` stream. Each subscriber has its own receiver; a
//! slow one skips what it missed, since the stream is best-effort and the
//! outbox is the record.

use futures::stream;
use tokio::sync::broadcast;

use ff_core::{CompletionPayload, CompletionStream};

/// Events a subscriber may fall behind by before it skips ahead.
const BUFFER: usize = 16_384;

/// The broadcast; clones share one channel.
#[derive(Clone, Debug)]
pub struct CompletionBroadcast {
    tx: broadcast::Sender<CompletionPayload>,
}

impl Default for CompletionBroadcast {
    fn default() -> Self {
        Self::new()
    }
}

impl CompletionBroadcast {
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(BUFFER).0,
        }
    }

    /// Announces one committed completion.
    pub fn send(&self, payload: CompletionPayload) {
        // No subscriber is not an error: the outbox entry is the record.
        let _ = self.tx.send(payload);
    }

    /// A new stream of what is sent from now on.
    pub fn subscribe(&self) -> CompletionStream {
        let events = stream::unfold(self.tx.subscribe(), |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(payload) => return Some((payload, rx)),
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::debug!(skipped, "completion subscriber lagged");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        // The outer box makes the trait object; the inner one makes the
        // unfold future `Unpin`.
        Box::pin(Box::pin(events))
    }
}
