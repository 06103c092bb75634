//! Completion events: the broadcast every `subscribe_completions` stream
//! reads, fed by the subscriber (see `subscriber`).

use std::time::Duration;

use futures::stream;
use tokio::sync::broadcast;

use ff_core::{CompletionBackend, CompletionPayload, CompletionStream, EngineError};

use crate::ValkeyBackend;

/// Events a subscriber may fall behind by before it skips ahead.
const BUFFER: usize = 16_384;

/// The broadcast of completion events; clones share one channel.
#[derive(Clone, Debug)]
pub(crate) struct Completions {
    tx: broadcast::Sender<CompletionPayload>,
}

impl Completions {
    pub(crate) fn new() -> Self {
        Self {
            tx: broadcast::channel(BUFFER).0,
        }
    }

    pub(crate) fn publish(&self, payload: CompletionPayload) {
        // No subscriber is not an error: the outbox entry is the record.
        let _ = self.tx.send(payload);
    }

    pub(crate) fn subscribe(&self) -> CompletionStream {
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
        Box::pin(Box::pin(events))
    }
}

/// How long a new subscription waits for the subscriber to be listening.
const LISTENING: Duration = Duration::from_secs(5);

#[async_trait::async_trait]
impl CompletionBackend for ValkeyBackend {
    /// The stream carries what commits after it is opened, once the
    /// subscriber is listening: this waits for that, briefly, so a
    /// completion right after subscribing is not missed at connect.
    async fn subscribe_completions(&self) -> Result<CompletionStream, EngineError> {
        let stream = self.inner.completions.subscribe();
        let mut listening = self.inner.subscribed.subscribe();
        // Best effort: without a connection the stream is still returned;
        // the reconciler finds what it misses.
        let _ = tokio::time::timeout(LISTENING, listening.wait_for(|up| *up)).await;
        Ok(stream)
    }
}
