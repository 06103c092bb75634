//! Group-committed dispatch of solo completions. A solo execution's cascade
//! only claims its outbox entry; under load thousands of these arrive per
//! second, so committer tasks take whatever is queued and claim the whole
//! batch in one statement (one commit, one WAL flush), answering each
//! caller after it.

use std::collections::HashSet;
use std::sync::Weak;

use tokio::sync::oneshot;

use ff_core::EngineError;

use crate::queue::take_batch;
use crate::{Inner, PgResult};

/// Entries one statement claims at most.
const MAX_BATCH: usize = 1024;

/// Statements in flight at once.
pub(crate) const COMMITTERS: usize = 2;

/// One queued claim of an outbox entry; answers whether this call claimed
/// it (false: it was dispatched already).
pub(crate) struct Job {
    pub(crate) seq: i64,
    pub(crate) reply: oneshot::Sender<Result<bool, EngineError>>,
}

pub(crate) type Queue = crate::queue::Queue<Job>;

/// A committer: claims batches of entries until the queue closes.
pub(crate) async fn commit_loop(backend: Weak<Inner>, queue: Queue) {
    while let Some(batch) = take_batch(&queue, MAX_BATCH).await {
        let Some(inner) = backend.upgrade() else {
            return;
        };
        let now = inner.clock.now_ms();
        let seqs: Vec<i64> = batch.iter().map(|j| j.seq).collect();
        let claimed = sqlx::query_scalar::<_, i64>(
            "UPDATE outbox SET dispatched_at = $2 \
             WHERE seq = ANY($1) AND dispatched_at IS NULL RETURNING seq",
        )
        .bind(seqs)
        .bind(now)
        .fetch_all(&inner.pool)
        .await
        .db();
        match claimed {
            Ok(claimed) => {
                // A seq queued twice is claimed once: the first caller wins.
                let mut claimed: HashSet<i64> = claimed.into_iter().collect();
                for job in batch {
                    let _ = job.reply.send(Ok(claimed.remove(&job.seq)));
                }
            }
            Err(err) => {
                for job in batch {
                    let _ = job
                        .reply
                        .send(Err(EngineError::backend(format!("dispatch failed: {err}"))));
                }
            }
        }
    }
}
