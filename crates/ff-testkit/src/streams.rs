//! Stream helpers shared by the in-process backends of this crate.

use ff_core::{CompletionPayload, CompletionStream};
use futures::{stream, StreamExt};
use tokio::sync::broadcast;

/// Adapts a broadcast receiver into a [`CompletionStream`]; a lagging
/// receiver skips what it missed (the outbox still holds it).
pub fn broadcast_stream(rx: broadcast::Receiver<CompletionPayload>) -> CompletionStream {
    // The inner box makes the unfold `Unpin`, as the stream type requires.
    let stream = stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(payload) => return Some((payload, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Box::pin(stream.boxed())
}
