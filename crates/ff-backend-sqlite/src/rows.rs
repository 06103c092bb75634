//! The one mapping between `ff_core::Execution` and its `executions` row.
//! Every statement that reads whole executions selects [`columns!`] and the
//! rowid and decodes with [`read_stored`]; every write goes through
//! [`insert_execution`] or [`update_execution`].

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::de::DeserializeOwned;

use ff_core::clock::Millis;
use ff_core::execution::FlowMembership;
use ff_core::suspension::rules;
use ff_core::{EngineError, Execution, ExecutionId, FlowId, JsonText, State};

use crate::SqlResult;

/// The columns [`read_execution`] decodes, in its order.
macro_rules! columns {
    () => {
        "id, namespace, lane, kind, payload, priority, capabilities, tags, idempotency_key, \
         retry, lease_ms, attempt_timeout_ms, deadline, run_at, flow_id, node_key, state, \
         attempt, lease_epoch, attempts_allowed, releases, reuse_attempt, lease_until, \
         attempt_deadline, worker_id, ready_at, created_at, updated_at, finished_at, result, \
         error, attempts, inputs, lease_token, wait, suspend_timeout_at, concurrency_key, \
         rate_key, fairness_key"
    };
}
pub(crate) use columns;

/// `SELECT` of every execution column and then the rowid, which
/// [`read_stored`] keeps so an update finds the row without the id index.
macro_rules! select_stored {
    () => {
        concat!(
            "SELECT ",
            crate::rows::columns!(),
            ", rowid FROM executions"
        )
    };
}
pub(crate) use select_stored;

/// Decodes a row selected with [`select_stored!`]: the execution and the
/// stamp a later [`update_execution`] needs.
pub(crate) fn read_stored(row: &Row<'_>) -> Result<(Execution, Stamp), EngineError> {
    let exec = read_execution(row)?;
    let stamp = Stamp::new(row.get(39).db()?, &exec);
    Ok((exec, stamp))
}

/// Decodes a row selected with [`columns!`].
pub(crate) fn read_execution(row: &Row<'_>) -> Result<Execution, EngineError> {
    let flow_id: Option<Vec<u8>> = row.get(14).db()?;
    let node_key: Option<String> = row.get(15).db()?;
    let flow = match (flow_id, node_key) {
        (Some(id), Some(node_key)) => Some(FlowMembership {
            flow_id: FlowId::from_slice(&id).map_err(corrupt)?,
            node_key,
        }),
        _ => None,
    };
    let state: String = row.get(16).db()?;
    Ok(Execution {
        id: read_id(row, 0)?,
        namespace: row.get(1).db()?,
        lane: row.get(2).db()?,
        kind: row.get(3).db()?,
        payload: JsonText::unchecked(row.get::<_, String>(4).db()?),
        priority: row.get(5).db()?,
        capabilities: read_json(row, 6)?,
        tags: read_json(row, 7)?,
        idempotency_key: row.get(8).db()?,
        retry: read_json(row, 9)?,
        lease_ms: row.get(10).db()?,
        attempt_timeout_ms: row.get(11).db()?,
        deadline: row.get(12).db()?,
        run_at: row.get(13).db()?,
        concurrency_key: row.get(36).db()?,
        rate_key: row.get(37).db()?,
        fairness_key: row.get(38).db()?,
        flow,
        state: state.parse().map_err(corrupt)?,
        attempt: row.get(17).db()?,
        lease_epoch: row.get(18).db()?,
        attempts_allowed: row.get(19).db()?,
        releases: row.get(20).db()?,
        reuse_attempt: row.get(21).db()?,
        lease_until: row.get(22).db()?,
        attempt_deadline: row.get(23).db()?,
        worker_id: row.get(24).db()?,
        ready_at: row.get(25).db()?,
        created_at: row.get(26).db()?,
        updated_at: row.get(27).db()?,
        finished_at: row.get(28).db()?,
        result: row
            .get::<_, Option<String>>(29)
            .db()?
            .map(JsonText::unchecked),
        error: row.get(30).db()?,
        attempts: read_json(row, 31)?,
        inputs: row
            .get::<_, Option<String>>(32)
            .db()?
            .map(|text| serde_json::from_str(&text).map_err(EngineError::backend))
            .transpose()?,
        lease_token: row
            .get::<_, Option<String>>(33)
            .db()?
            .map(|text| text.parse().map_err(corrupt))
            .transpose()?,
        wait: row
            .get::<_, Option<String>>(34)
            .db()?
            .map(|text| serde_json::from_str(&text).map_err(EngineError::backend))
            .transpose()?,
    })
}

/// An execution id stored as 16 bytes at column `idx`.
pub(crate) fn read_id(row: &Row<'_>, idx: usize) -> Result<ExecutionId, EngineError> {
    let bytes = row
        .get_ref(idx)
        .db()?
        .as_blob()
        .map_err(EngineError::backend)?;
    ExecutionId::from_slice(bytes).map_err(corrupt)
}

fn read_json<T: DeserializeOwned>(row: &Row<'_>, idx: usize) -> Result<T, EngineError> {
    let text = row
        .get_ref(idx)
        .db()?
        .as_str()
        .map_err(EngineError::backend)?;
    serde_json::from_str(text).map_err(EngineError::backend)
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, EngineError> {
    serde_json::to_string(value).map_err(EngineError::backend)
}

/// A stored value this build cannot decode is a backend failure, not bad
/// input from the caller.
fn corrupt(err: EngineError) -> EngineError {
    EngineError::backend(format!("corrupt execution row: {err}"))
}

/// One execution by id, with its stamp.
pub(crate) fn load_stored(
    conn: &Connection,
    id: ExecutionId,
) -> Result<Option<(Execution, Stamp)>, EngineError> {
    let mut stmt = conn
        .prepare_cached(concat!(select_stored!(), " WHERE id = ?1"))
        .db()?;
    let mut rows = stmt.query([&id.as_bytes()[..]]).db()?;
    rows.next().db()?.map(read_stored).transpose()
}

/// The id holding `key` in `namespace`, if any.
pub(crate) fn find_by_idempotency_key(
    conn: &Connection,
    namespace: &str,
    key: &str,
) -> Result<Option<ExecutionId>, EngineError> {
    let mut stmt = conn
        .prepare_cached("SELECT id FROM executions WHERE namespace = ?1 AND idempotency_key = ?2")
        .db()?;
    let bytes: Option<Vec<u8>> = stmt
        .query_row(params![namespace, key], |row| row.get(0))
        .optional()
        .db()?;
    bytes
        .map(|b| ExecutionId::from_slice(&b).map_err(corrupt))
        .transpose()
}

/// Stores a new execution, every column; returns its stamp.
pub(crate) fn insert_execution(conn: &Connection, e: &Execution) -> Result<Stamp, EngineError> {
    let mut stmt = conn
        .prepare_cached(concat!(
            "INSERT INTO executions (",
            columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
             ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, \
             ?35, ?36, ?37, ?38, ?39)"
        ))
        .db()?;
    let rowid = stmt
        .insert(params![
            &e.id.as_bytes()[..],
            e.namespace,
            e.lane,
            e.kind,
            e.payload.as_str(),
            e.priority,
            to_json(&e.capabilities)?,
            to_json(&e.tags)?,
            e.idempotency_key,
            to_json(&e.retry)?,
            e.lease_ms,
            e.attempt_timeout_ms,
            e.deadline,
            e.run_at,
            e.flow.as_ref().map(|f| &f.flow_id.as_bytes()[..]),
            e.flow.as_ref().map(|f| f.node_key.as_str()),
            e.state.as_str(),
            e.attempt,
            e.lease_epoch,
            e.attempts_allowed,
            e.releases,
            e.reuse_attempt,
            e.lease_until,
            e.attempt_deadline,
            e.worker_id,
            e.ready_at,
            e.created_at,
            e.updated_at,
            e.finished_at,
            e.result.as_ref().map(JsonText::as_str),
            e.error,
            to_json(&e.attempts)?,
            e.inputs.as_ref().map(to_json).transpose()?,
            e.lease_token.map(|t| t.to_string()),
            e.wait.as_ref().map(to_json).transpose()?,
            rules::timeout_at(e),
            e.concurrency_key,
            e.rate_key,
            e.fairness_key,
        ])
        .db()?;
    Ok(Stamp::new(rowid, e))
}

/// Writes the state columns of a stored execution. The spec columns
/// (namespace .. node_key, created_at) are set once at submit and no
/// `ff_core` transition changes them, so they are not rewritten.
pub(crate) fn update_execution(
    conn: &Connection,
    stamp: &Stamp,
    e: &Execution,
) -> Result<(), EngineError> {
    let mut stmt = conn
        .prepare_cached(
            "UPDATE executions SET state = ?2, attempt = ?3, lease_epoch = ?4, \
             attempts_allowed = ?5, releases = ?6, reuse_attempt = ?7, lease_until = ?8, \
             attempt_deadline = ?9, worker_id = ?10, ready_at = ?11, updated_at = ?12, \
             finished_at = ?13, result = ?14, error = ?15, attempts = ?16, inputs = ?17, \
             lease_token = ?18, wait = ?19, suspend_timeout_at = ?20 WHERE rowid = ?1",
        )
        .db()?;
    let changed = stmt
        .execute(params![
            stamp.rowid,
            e.state.as_str(),
            e.attempt,
            e.lease_epoch,
            e.attempts_allowed,
            e.releases,
            e.reuse_attempt,
            e.lease_until,
            e.attempt_deadline,
            e.worker_id,
            e.ready_at,
            e.updated_at,
            e.finished_at,
            e.result.as_ref().map(JsonText::as_str),
            e.error,
            to_json(&e.attempts)?,
            e.inputs.as_ref().map(to_json).transpose()?,
            e.lease_token.map(|t| t.to_string()),
            e.wait.as_ref().map(to_json).transpose()?,
            rules::timeout_at(e),
        ])
        .db()?;
    if changed != 1 {
        return Err(EngineError::backend(format!(
            "execution {} vanished during an update",
            e.id
        )));
    }
    Ok(())
}

/// Where a loaded execution is stored and what every `ff_core` transition
/// moves: the state, or (renew) the lease and `updated_at`, or (a
/// waitpoint or signal, maybe in the same millisecond) the wait state's
/// [`wait_fingerprint`]. Comparing the
/// stamp taken at load with the execution after a rule tells whether the row
/// must be written, without cloning the execution and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    rowid: i64,
    state: State,
    updated_at: Millis,
    lease_until: Option<Millis>,
    wait: u64,
}

/// What every wait rule moves: the lists' lengths, each waitpoint's attempt
/// and state, and each suspension's end. Cheap to take at every load, and
/// different after any rule that changed the wait state.
fn wait_fingerprint(e: &Execution) -> u64 {
    use std::hash::{Hash, Hasher};
    let Some(wait) = &e.wait else {
        return 0;
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    wait.signals.len().hash(&mut hasher);
    for w in &wait.waitpoints {
        (w.attempt, w.state).hash(&mut hasher);
    }
    for s in &wait.suspensions {
        s.ended.hash(&mut hasher);
    }
    hasher.finish() | 1
}

impl Stamp {
    fn new(rowid: i64, e: &Execution) -> Self {
        Self {
            rowid,
            state: e.state,
            updated_at: e.updated_at,
            lease_until: e.lease_until,
            wait: wait_fingerprint(e),
        }
    }

    /// The stamp of `e` once written back over this one's row.
    pub(crate) fn after(&self, e: &Execution) -> Self {
        Self::new(self.rowid, e)
    }

    /// The state when the stamp was taken.
    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// Whether `e` moved since the stamp was taken.
    pub(crate) fn changed(&self, e: &Execution) -> bool {
        *self != Self::new(self.rowid, e)
    }
}
