//! `subscribe_completions`: a stream of the broadcast the listener (see
//! `listener`) feeds.

use std::time::Duration;

use ff_core::{CompletionBackend, CompletionStream, EngineError};

use crate::ValkeyBackend;

/// How long a new subscription waits for the listener to be listening.
const LISTENING: Duration = Duration::from_secs(5);

#[async_trait::async_trait]
impl CompletionBackend for ValkeyBackend {
    /// The stream carries what commits after it is opened, once the
    /// listener is listening: this waits for that, briefly, so a
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
