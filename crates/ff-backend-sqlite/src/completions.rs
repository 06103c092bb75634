//! The completion outbox and its in-process broadcast.
//!
//! A terminal transition inserts its outbox row inside the write command
//! ([`record`]); the writer publishes the payloads only after the group
//! commits. Subscribers each get their own broadcast receiver: a slow one
//! skips what it missed (the stream is best-effort; the outbox is the record).

use ff_backend_support::CompletionBroadcast;
use rusqlite::{params, Connection};

use ff_core::clock::Millis;
use ff_core::{
    CompletionBackend, CompletionPayload, CompletionStream, EngineError, Execution, FlowId,
};

use crate::{SqlResult, SqliteBackend};

/// The outbox partition of every SQLite entry.
const PARTITION: u32 = 0;

/// The broadcast side; clones share one channel.
#[derive(Clone, Debug)]
pub(crate) struct Completions {
    broadcast: CompletionBroadcast,
}

impl Completions {
    pub(crate) fn new() -> Self {
        Self {
            broadcast: CompletionBroadcast::new(),
        }
    }

    /// Announces committed completions, in outbox order.
    pub(crate) fn publish(&self, payloads: Vec<CompletionPayload>) {
        for payload in payloads {
            self.broadcast.send(payload);
        }
    }

    pub(crate) fn subscribe(&self) -> CompletionStream {
        self.broadcast.subscribe()
    }
}

/// Inserts the outbox entry for `exec`, which has just become terminal at
/// `now`, and returns the payload to announce after the commit.
pub(crate) fn record(
    conn: &Connection,
    exec: &Execution,
    now: Millis,
) -> Result<CompletionPayload, EngineError> {
    let outcome = exec
        .outcome()
        .ok_or_else(|| EngineError::backend(format!("execution {} is not terminal", exec.id)))?;
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO outbox (execution_id, namespace, flow_id, node_key, outcome, attempt, \
             committed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .db()?;
    let flow = exec.flow.as_ref();
    let seq = stmt
        .insert(params![
            &exec.id.as_bytes()[..],
            exec.namespace,
            flow.map(|f| &f.flow_id.as_bytes()[..]),
            flow.map(|f| f.node_key.as_str()),
            outcome.as_str(),
            exec.attempt,
            now,
        ])
        .db()?;
    let seq = u64::try_from(seq).map_err(EngineError::backend)?;
    CompletionPayload::for_execution(exec, now, PARTITION, seq)
        .ok_or_else(|| EngineError::backend(format!("execution {} is not terminal", exec.id)))
}

#[async_trait::async_trait]
impl CompletionBackend for SqliteBackend {
    async fn subscribe_completions(&self) -> Result<CompletionStream, EngineError> {
        Ok(self.inner.completions.subscribe())
    }
}

/// Undispatched outbox entries committed at or before `cutoff`, oldest first.
/// Served by the `outbox_undispatched` partial index.
pub(crate) fn undispatched(
    conn: &Connection,
    cutoff: Millis,
    limit: u32,
) -> Result<Vec<CompletionPayload>, EngineError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, execution_id, namespace, flow_id, node_key, outcome, attempt, committed_at \
             FROM outbox WHERE dispatched_at IS NULL AND committed_at <= ?1 ORDER BY seq LIMIT ?2",
        )
        .db()?;
    let mut rows = stmt.query(params![cutoff, limit]).db()?;
    let mut entries = Vec::new();
    while let Some(row) = rows.next().db()? {
        let flow_id: Option<Vec<u8>> = row.get(3).db()?;
        let outcome: String = row.get(5).db()?;
        entries.push(CompletionPayload {
            seq: row.get(0).db()?,
            execution_id: crate::rows::read_id(row, 1)?,
            namespace: row.get(2).db()?,
            flow_id: flow_id.map(|b| FlowId::from_slice(&b)).transpose()?,
            node_key: row.get(4).db()?,
            outcome: outcome.parse()?,
            attempt: row.get(6).db()?,
            committed_at: row.get(7).db()?,
            partition: PARTITION,
        });
    }
    Ok(entries)
}
