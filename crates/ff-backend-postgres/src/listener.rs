//! Wake-ups and completion events from `LISTEN`.
//!
//! Transitions commit with `NOTIFY` (triggers in the schema): `ff_work_<schema>`
//! when an execution became ready, `ff_done_<schema>` with the outbox seqs a
//! statement recorded. One connection per backend listens to both. A
//! completion notification names entries; the listener reads those still
//! undispatched from the outbox and publishes them, so every process
//! sharing the database hears of every completion. Writes made by this
//! process are published straight after their commit as well; a bounded set
//! of published seqs keeps each entry to one event per process.
//!
//! After a lost connection the listener reconnects, reads every undispatched
//! entry and wakes all claimers, since notifications sent in the gap are
//! gone. The outbox stays the record: the reconciler covers what a
//! subscriber missed.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream;
use sqlx::postgres::{PgListener, PgNotification};
use sqlx::{PgPool, Row};
use tokio::sync::{broadcast, watch};

use ff_core::{CompletionPayload, CompletionStream, EngineError, ExecutionId, FlowId};

use crate::store::PARTITION;
use crate::PgResult;

/// Events a subscriber may fall behind by before it skips ahead.
const BUFFER: usize = 16_384;

/// Published seqs remembered for de-duplication.
const REMEMBERED: usize = 65_536;

/// Entries read per sweep of the outbox after a reconnect.
const SWEEP_LIMIT: i64 = 10_000;

/// Pause before reconnecting after the listener failed.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// The broadcast of completion events; clones share one channel.
#[derive(Clone, Debug)]
pub(crate) struct Completions {
    tx: broadcast::Sender<CompletionPayload>,
    published: Arc<Mutex<Published>>,
}

#[derive(Debug, Default)]
struct Published {
    seqs: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Published {
    /// Records `seq`; false when it was published already.
    fn insert(&mut self, seq: u64) -> bool {
        if !self.seqs.insert(seq) {
            return false;
        }
        self.order.push_back(seq);
        if self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.seqs.remove(&old);
            }
        }
        true
    }
}

impl Completions {
    pub(crate) fn new() -> Self {
        Self {
            tx: broadcast::channel(BUFFER).0,
            published: Arc::default(),
        }
    }

    /// Publishes entries not published before.
    pub(crate) fn publish_local(&self, payloads: Vec<CompletionPayload>) {
        if payloads.is_empty() {
            return;
        }
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for payload in payloads {
            if published.insert(payload.seq) {
                // No subscriber is not an error: the outbox row is the record.
                let _ = self.tx.send(payload);
            }
        }
    }

    /// Of `seqs`, those not published yet.
    fn unpublished(&self, seqs: Vec<u64>) -> Vec<u64> {
        let published = self
            .published
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seqs.into_iter()
            .filter(|s| !published.seqs.contains(s))
            .collect()
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

/// The channel names of `schema`.
pub(crate) fn channels(schema: &str) -> (String, String) {
    (format!("ff_work_{schema}"), format!("ff_done_{schema}"))
}

/// Listens until aborted, reconnecting on its own.
pub(crate) async fn run(
    pool: PgPool,
    schema: String,
    completions: Completions,
    work: watch::Sender<u64>,
) {
    let (work_channel, done_channel) = channels(&schema);
    loop {
        if let Err(err) = listen(&pool, &work_channel, &done_channel, &completions, &work).await {
            tracing::warn!(error = %err, schema, "postgres listener failed; reconnecting");
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

async fn listen(
    pool: &PgPool,
    work_channel: &str,
    done_channel: &str,
    completions: &Completions,
    work: &watch::Sender<u64>,
) -> Result<(), EngineError> {
    let mut listener = PgListener::connect_with(pool).await.db()?;
    listener
        .listen_all([work_channel, done_channel])
        .await
        .db()?;
    catch_up(pool, completions, work).await?;
    loop {
        let Some(first) = listener.try_recv().await.db()? else {
            // The connection dropped and came back: what was sent in the
            // gap is lost.
            catch_up(pool, completions, work).await?;
            continue;
        };
        let mut batch = vec![first];
        while let Some(more) = listener.next_buffered() {
            batch.push(more);
        }
        handle(pool, &batch, work_channel, completions, work).await?;
    }
}

/// Handles a batch of notifications with at most one outbox read.
async fn handle(
    pool: &PgPool,
    batch: &[PgNotification],
    work_channel: &str,
    completions: &Completions,
    work: &watch::Sender<u64>,
) -> Result<(), EngineError> {
    let mut seqs = Vec::new();
    let mut sweep = false;
    for n in batch {
        if n.channel() == work_channel {
            work.send_modify(|v| *v = v.wrapping_add(1));
            continue;
        }
        if n.payload().is_empty() {
            sweep = true;
        }
        seqs.extend(n.payload().split(',').filter_map(|s| s.parse::<u64>().ok()));
    }
    if sweep {
        return publish_undispatched(pool, completions, None).await;
    }
    let seqs = completions.unpublished(seqs);
    if seqs.is_empty() {
        return Ok(());
    }
    publish_undispatched(pool, completions, Some(seqs)).await
}

async fn catch_up(
    pool: &PgPool,
    completions: &Completions,
    work: &watch::Sender<u64>,
) -> Result<(), EngineError> {
    work.send_modify(|v| *v = v.wrapping_add(1));
    publish_undispatched(pool, completions, None).await
}

/// Publishes undispatched outbox entries: those among `seqs`, or the oldest
/// ones when `seqs` is `None`.
async fn publish_undispatched(
    pool: &PgPool,
    completions: &Completions,
    seqs: Option<Vec<u64>>,
) -> Result<(), EngineError> {
    let rows = match seqs {
        Some(seqs) => {
            let seqs: Vec<i64> = seqs
                .into_iter()
                .filter_map(|s| i64::try_from(s).ok())
                .collect();
            sqlx::query(concat!(
                crate::listener::outbox_columns!(),
                " WHERE seq = ANY($1) AND dispatched_at IS NULL ORDER BY seq"
            ))
            .bind(seqs)
            .fetch_all(pool)
            .await
        }
        None => {
            sqlx::query(concat!(
                crate::listener::outbox_columns!(),
                " WHERE dispatched_at IS NULL ORDER BY seq LIMIT $1"
            ))
            .bind(SWEEP_LIMIT)
            .fetch_all(pool)
            .await
        }
    }
    .db()?;
    let payloads = rows
        .iter()
        .map(read_payload)
        .collect::<Result<Vec<_>, _>>()?;
    completions.publish_local(payloads);
    Ok(())
}

/// `SELECT` of the columns [`read_payload`] decodes.
macro_rules! outbox_columns {
    () => {
        "SELECT seq, execution_id, namespace, flow_id, node_key, outcome, attempt, committed_at \
         FROM outbox"
    };
}
pub(crate) use outbox_columns;

/// Decodes a row selected with [`outbox_columns!`].
pub(crate) fn read_payload(row: &sqlx::postgres::PgRow) -> Result<CompletionPayload, EngineError> {
    let seq: i64 = row.try_get(0).db()?;
    let attempt: i64 = row.try_get(6).db()?;
    let outcome: String = row.try_get(5).db()?;
    Ok(CompletionPayload {
        seq: u64::try_from(seq).map_err(EngineError::backend)?,
        execution_id: ExecutionId::from_uuid(row.try_get(1).db()?),
        namespace: row.try_get(2).db()?,
        flow_id: row
            .try_get::<Option<uuid::Uuid>, _>(3)
            .db()?
            .map(FlowId::from_uuid),
        node_key: row.try_get(4).db()?,
        outcome: outcome.parse()?,
        attempt: u32::try_from(attempt).map_err(EngineError::backend)?,
        committed_at: row.try_get(7).db()?,
        partition: PARTITION,
    })
}
