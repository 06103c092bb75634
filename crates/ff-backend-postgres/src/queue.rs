//! The queue group-committing tasks share: callers send jobs, committers
//! take whatever is waiting as one batch.

use std::sync::Arc;

use tokio::sync::{mpsc, Mutex};

/// Jobs shared by several committer tasks.
pub(crate) type Queue<J> = Arc<Mutex<mpsc::UnboundedReceiver<J>>>;

/// A new queue: the sending side, and the side committers share.
pub(crate) fn queue<J>() -> (mpsc::UnboundedSender<J>, Queue<J>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, Arc::new(Mutex::new(rx)))
}

/// Waits for a job, then takes every job already waiting, up to `max`.
/// `None` once every sender is gone. Nothing waits to fill a batch: an idle
/// system commits one job as soon as it comes.
pub(crate) async fn take_batch<J>(queue: &Queue<J>, max: usize) -> Option<Vec<J>> {
    let mut rx = queue.lock().await;
    let first = rx.recv().await?;
    let mut batch = vec![first];
    while batch.len() < max {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    Some(batch)
}
