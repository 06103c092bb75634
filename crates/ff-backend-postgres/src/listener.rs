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
//! entry (a page at a time) and wakes all claimers, since notifications sent in the gap are
//! gone. The outbox stays the record: the reconciler covers what a
//! subscriber missed.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgNotification};
use sqlx::{PgPool, Row};

use ff_core::{CompletionPayload, EngineError, ExecutionId, FlowId};

use ff_backend_support::WorkSignal;

use crate::completions::Completions;
use crate::write::PARTITION;
use crate::PgResult;

/// Outbox entries read per statement.
const PAGE: i64 = 2_000;

/// Pause before reconnecting after the listener failed.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// The channel names of `schema`.
pub(crate) fn channels(schema: &str) -> (String, String) {
    (format!("ff_work_{schema}"), format!("ff_done_{schema}"))
}

/// Listens until aborted, reconnecting on its own.
pub(crate) async fn run(pool: PgPool, schema: String, completions: Completions, work: WorkSignal) {
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
    work: &WorkSignal,
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

/// What a batch of notifications asks to be read.
#[derive(Debug, Default, PartialEq)]
struct Wanted {
    seqs: Vec<u64>,
    ranges: Vec<(u64, u64)>,
    sweep: bool,
    work: bool,
}

/// Parses a batch: work wake-ups, and completion payloads that list seqs
/// (`1,2,3`), give a range (`4-900`), or are empty (read everything).
fn parse(batch: &[PgNotification], work_channel: &str) -> Wanted {
    let mut wanted = Wanted::default();
    for n in batch {
        if n.channel() == work_channel {
            wanted.work = true;
            continue;
        }
        let payload = n.payload();
        if payload.is_empty() {
            wanted.sweep = true;
        } else if let Some((lo, hi)) = payload.split_once('-') {
            match (lo.parse(), hi.parse()) {
                (Ok(lo), Ok(hi)) => wanted.ranges.push((lo, hi)),
                _ => wanted.sweep = true,
            }
        } else {
            wanted
                .seqs
                .extend(payload.split(',').filter_map(|s| s.parse::<u64>().ok()));
        }
    }
    wanted
}

/// Handles a batch of notifications with few outbox reads.
async fn handle(
    pool: &PgPool,
    batch: &[PgNotification],
    work_channel: &str,
    completions: &Completions,
    work: &WorkSignal,
) -> Result<(), EngineError> {
    let wanted = parse(batch, work_channel);
    if wanted.work {
        work.bump();
    }
    if wanted.sweep {
        return publish_undispatched(pool, completions, Read::All).await;
    }
    for (lo, hi) in wanted.ranges {
        publish_undispatched(pool, completions, Read::Range(lo, hi)).await?;
    }
    let seqs = completions.unpublished(wanted.seqs);
    if seqs.is_empty() {
        return Ok(());
    }
    publish_undispatched(pool, completions, Read::Seqs(seqs)).await
}

async fn catch_up(
    pool: &PgPool,
    completions: &Completions,
    work: &WorkSignal,
) -> Result<(), EngineError> {
    work.bump();
    publish_undispatched(pool, completions, Read::All).await
}

/// Which undispatched outbox entries to read.
enum Read {
    Seqs(Vec<u64>),
    Range(u64, u64),
    /// Every one, a page at a time.
    All,
}

/// Publishes the undispatched outbox entries `read` names.
async fn publish_undispatched(
    pool: &PgPool,
    completions: &Completions,
    read: Read,
) -> Result<(), EngineError> {
    let signed = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
    let (lo, hi, seqs) = match read {
        Read::Seqs(seqs) => (
            0,
            i64::MAX,
            Some(seqs.into_iter().map(signed).collect::<Vec<_>>()),
        ),
        Read::Range(lo, hi) => (signed(lo), signed(hi), None),
        Read::All => (0, i64::MAX, None),
    };
    let mut after = lo.saturating_sub(1);
    loop {
        let rows = sqlx::query(concat!(
            crate::listener::outbox_columns!(),
            " WHERE dispatched_at IS NULL AND seq > $1 AND seq <= $2 \
               AND ($3::bigint[] IS NULL OR seq = ANY($3)) ORDER BY seq LIMIT $4"
        ))
        .bind(after)
        .bind(hi)
        .bind(&seqs)
        .bind(PAGE)
        .fetch_all(pool)
        .await
        .db()?;
        let full = rows.len() as i64 == PAGE;
        let payloads = rows
            .iter()
            .map(read_payload)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(last) = payloads.last() {
            after = signed(last.seq);
        }
        completions.publish_local(payloads);
        if !full {
            return Ok(());
        }
    }
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
