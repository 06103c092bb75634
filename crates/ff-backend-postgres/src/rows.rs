//! The one mapping between `ff_core::Execution` and its `executions` row.
//! Every statement that reads whole executions selects [`columns!`] and
//! decodes with [`read_stored`]; every write goes through [`insert_batch`]
//! or [`crate::write::save_batch`].

use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Row};

use ff_core::execution::FlowMembership;
use ff_core::{EngineError, Execution, ExecutionId, FlowId, JsonText};

use crate::{PgResult, StoreError};

/// The columns [`read_execution`] decodes, in its order, then `version`.
macro_rules! columns {
    () => {
        "id, namespace, lane, kind, payload, priority, capabilities, tags, idempotency_key, \
         retry, lease_ms, attempt_timeout_ms, deadline, run_at, flow_id, node_key, state, \
         attempt, lease_epoch, attempts_allowed, releases, reuse_attempt, lease_until, \
         attempt_deadline, worker_id, ready_at, created_at, updated_at, finished_at, result, \
         error, attempts, inputs, lease_token, wait, concurrency_key, rate_key, fairness_key, \
         version"
    };
}
pub(crate) use columns;

/// `SELECT` of every execution column from `executions`.
macro_rules! select_stored {
    () => {
        concat!("SELECT ", crate::rows::columns!(), " FROM executions")
    };
}
pub(crate) use select_stored;

/// An execution as read, with the row version a later write must name.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) exec: Execution,
    pub(crate) version: i64,
}

/// Decodes a row selected with [`select_stored!`].
pub(crate) fn read_stored(row: &PgRow) -> Result<Stored, EngineError> {
    Ok(Stored {
        exec: read_execution(row)?,
        version: row.try_get(38).db()?,
    })
}

/// Decodes the first 38 columns of a row selected with [`columns!`].
pub(crate) fn read_execution(row: &PgRow) -> Result<Execution, EngineError> {
    let flow_id: Option<uuid::Uuid> = row.try_get(14).db()?;
    let node_key: Option<String> = row.try_get(15).db()?;
    let flow = match (flow_id, node_key) {
        (Some(id), Some(node_key)) => Some(FlowMembership {
            flow_id: FlowId::from_uuid(id),
            node_key,
        }),
        _ => None,
    };
    let state: String = row.try_get(16).db()?;
    Ok(Execution {
        id: ExecutionId::from_uuid(row.try_get(0).db()?),
        namespace: row.try_get(1).db()?,
        lane: row.try_get(2).db()?,
        kind: row.try_get(3).db()?,
        payload: JsonText::unchecked(row.try_get::<String, _>(4).db()?),
        priority: row.try_get(5).db()?,
        capabilities: row.try_get(6).db()?,
        tags: read_json(row, 7)?,
        idempotency_key: row.try_get(8).db()?,
        retry: read_json(row, 9)?,
        lease_ms: unsigned(row.try_get(10).db()?)?,
        attempt_timeout_ms: row
            .try_get::<Option<i64>, _>(11)
            .db()?
            .map(unsigned)
            .transpose()?,
        deadline: row.try_get(12).db()?,
        run_at: row.try_get(13).db()?,
        concurrency_key: row.try_get(35).db()?,
        rate_key: row.try_get(36).db()?,
        fairness_key: row.try_get(37).db()?,
        flow,
        state: state.parse().map_err(corrupt)?,
        attempt: narrow(row.try_get(17).db()?)?,
        lease_epoch: unsigned(row.try_get(18).db()?)?,
        attempts_allowed: narrow(row.try_get(19).db()?)?,
        releases: narrow(row.try_get(20).db()?)?,
        reuse_attempt: row.try_get(21).db()?,
        lease_until: row.try_get(22).db()?,
        attempt_deadline: row.try_get(23).db()?,
        worker_id: row.try_get(24).db()?,
        ready_at: row.try_get(25).db()?,
        created_at: row.try_get(26).db()?,
        updated_at: row.try_get(27).db()?,
        finished_at: row.try_get(28).db()?,
        result: row
            .try_get::<Option<String>, _>(29)
            .db()?
            .map(JsonText::unchecked),
        error: row.try_get(30).db()?,
        attempts: read_json(row, 31)?,
        inputs: row
            .try_get::<Option<String>, _>(32)
            .db()?
            .map(|text| serde_json::from_str(&text).map_err(EngineError::backend))
            .transpose()?,
        lease_token: row
            .try_get::<Option<&str>, _>(33)
            .db()?
            .map(|text| text.parse().map_err(corrupt))
            .transpose()?,
        wait: row
            .try_get::<Option<&str>, _>(34)
            .db()?
            .map(|text| serde_json::from_str(text).map_err(EngineError::backend))
            .transpose()?,
    })
}

fn read_json<T: DeserializeOwned>(row: &PgRow, idx: usize) -> Result<T, EngineError> {
    let text: &str = row.try_get(idx).db()?;
    serde_json::from_str(text).map_err(EngineError::backend)
}

pub(crate) fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, EngineError> {
    serde_json::to_string(value).map_err(EngineError::backend)
}

fn unsigned(value: i64) -> Result<u64, EngineError> {
    u64::try_from(value).map_err(|_| corrupt(EngineError::backend("negative count")))
}

fn narrow(value: i64) -> Result<u32, EngineError> {
    u32::try_from(value).map_err(|_| corrupt(EngineError::backend("count out of range")))
}

/// Postgres has no unsigned types: a u64 is stored as its i64 bit pattern
/// only where it can never exceed i64::MAX (epochs, millisecond spans).
pub(crate) fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored value this build cannot decode is a backend failure, not bad
/// input from the caller.
fn corrupt(err: EngineError) -> EngineError {
    EngineError::backend(format!("corrupt execution row: {err}"))
}

/// One execution by id, with its version.
pub(crate) async fn load<'e>(
    conn: impl PgExecutor<'e>,
    id: ExecutionId,
    lock: bool,
) -> Result<Option<Stored>, StoreError> {
    let sql = if lock {
        concat!(select_stored!(), " WHERE id = $1 FOR UPDATE")
    } else {
        concat!(select_stored!(), " WHERE id = $1")
    };
    sqlx::query(sql)
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(read_stored)
        .transpose()
        .map_err(StoreError::from)
}

/// The `INSERT` of [`insert_batch`], every column from one array each.
macro_rules! insert_sql {
    () => {
        concat!(
            "INSERT INTO executions (",
        crate::rows::columns!(),
        ") SELECT id, namespace, lane, kind, payload, priority, capabilities::text[], tags, \
         idempotency_key, retry, lease_ms, attempt_timeout_ms, deadline, run_at, flow_id, \
         node_key, state, attempt, lease_epoch, attempts_allowed, releases, reuse_attempt, \
         lease_until, attempt_deadline, worker_id, ready_at, created_at, updated_at, \
         finished_at, result, error, attempts, inputs, NULL, NULL, concurrency_key, rate_key, \
         fairness_key, 0 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::int[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[], \
         $12::bigint[], $13::bigint[], $14::bigint[], $15::uuid[], $16::text[], $17::text[], \
         $18::bigint[], $19::bigint[], $20::bigint[], $21::bigint[], $22::bool[], \
         $23::bigint[], $24::bigint[], $25::text[], $26::bigint[], $27::bigint[], \
         $28::bigint[], $29::bigint[], $30::text[], $31::text[], $32::text[], $33::text[], $34::text[], $35::text[], $36::text[]) \
         AS t(id, namespace, lane, kind, payload, priority, capabilities, tags, \
         idempotency_key, retry, lease_ms, attempt_timeout_ms, deadline, run_at, flow_id, \
         node_key, state, attempt, lease_epoch, attempts_allowed, releases, reuse_attempt, \
         lease_until, attempt_deadline, worker_id, ready_at, created_at, updated_at, \
         finished_at, result, error, attempts, inputs, concurrency_key, rate_key, fairness_key)"
        )
    };
}

/// Stores new executions, every column, in one statement. An execution
/// whose idempotency key is already taken in its namespace is left out;
/// the ids that were stored are returned.
pub(crate) async fn insert_batch<'e>(
    conn: impl PgExecutor<'e>,
    execs: &[Execution],
    skip_taken_keys: bool,
) -> Result<Vec<ExecutionId>, StoreError> {
    let mut c = InsertColumns::default();
    for e in execs {
        c.push(e)?;
    }
    let sql = if skip_taken_keys {
        concat!(
            insert_sql!(),
            " ON CONFLICT (namespace, idempotency_key) WHERE idempotency_key IS NOT NULL \
             DO NOTHING RETURNING id"
        )
    } else {
        concat!(insert_sql!(), " RETURNING id")
    };
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(sql)
        .bind(c.id)
        .bind(c.namespace)
        .bind(c.lane)
        .bind(c.kind)
        .bind(c.payload)
        .bind(c.priority)
        .bind(c.capabilities)
        .bind(c.tags)
        .bind(c.idempotency_key)
        .bind(c.retry)
        .bind(c.lease_ms)
        .bind(c.attempt_timeout_ms)
        .bind(c.deadline)
        .bind(c.run_at)
        .bind(c.flow_id)
        .bind(c.node_key)
        .bind(c.state)
        .bind(c.attempt)
        .bind(c.lease_epoch)
        .bind(c.attempts_allowed)
        .bind(c.releases)
        .bind(c.reuse_attempt)
        .bind(c.lease_until)
        .bind(c.attempt_deadline)
        .bind(c.worker_id)
        .bind(c.ready_at)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(c.finished_at)
        .bind(c.result)
        .bind(c.error)
        .bind(c.attempts)
        .bind(c.inputs)
        .bind(c.concurrency_key)
        .bind(c.rate_key)
        .bind(c.fairness_key)
        .fetch_all(conn)
        .await?;
    Ok(ids.into_iter().map(ExecutionId::from_uuid).collect())
}

/// The columns of [`insert_batch`], one array each.
#[derive(Default)]
struct InsertColumns {
    id: Vec<uuid::Uuid>,
    namespace: Vec<String>,
    lane: Vec<String>,
    kind: Vec<String>,
    payload: Vec<String>,
    priority: Vec<i32>,
    /// Arrays of arrays must be rectangular in Postgres, so each execution's
    /// capabilities travel as one array literal, unpacked by the statement's
    /// `::text[]` cast.
    capabilities: Vec<String>,
    tags: Vec<String>,
    idempotency_key: Vec<Option<String>>,
    retry: Vec<String>,
    lease_ms: Vec<i64>,
    attempt_timeout_ms: Vec<Option<i64>>,
    deadline: Vec<Option<i64>>,
    run_at: Vec<Option<i64>>,
    flow_id: Vec<Option<uuid::Uuid>>,
    node_key: Vec<Option<String>>,
    state: Vec<&'static str>,
    attempt: Vec<i64>,
    lease_epoch: Vec<i64>,
    attempts_allowed: Vec<i64>,
    releases: Vec<i64>,
    reuse_attempt: Vec<bool>,
    lease_until: Vec<Option<i64>>,
    attempt_deadline: Vec<Option<i64>>,
    worker_id: Vec<Option<String>>,
    ready_at: Vec<i64>,
    created_at: Vec<i64>,
    updated_at: Vec<i64>,
    finished_at: Vec<Option<i64>>,
    result: Vec<Option<String>>,
    error: Vec<Option<String>>,
    attempts: Vec<String>,
    inputs: Vec<Option<String>>,
    concurrency_key: Vec<Option<String>>,
    rate_key: Vec<Option<String>>,
    fairness_key: Vec<Option<String>>,
}

impl InsertColumns {
    fn push(&mut self, e: &Execution) -> Result<(), EngineError> {
        self.id.push(*e.id.as_uuid());
        self.namespace.push(e.namespace.clone());
        self.lane.push(e.lane.clone());
        self.kind.push(e.kind.clone());
        self.payload.push(e.payload.as_str().to_owned());
        self.priority.push(e.priority);
        self.capabilities.push(to_pg_array(&e.capabilities));
        self.tags.push(to_json(&e.tags)?);
        self.idempotency_key.push(e.idempotency_key.clone());
        self.retry.push(to_json(&e.retry)?);
        self.lease_ms.push(signed(e.lease_ms));
        self.attempt_timeout_ms
            .push(e.attempt_timeout_ms.map(signed));
        self.deadline.push(e.deadline);
        self.run_at.push(e.run_at);
        self.flow_id
            .push(e.flow.as_ref().map(|f| *f.flow_id.as_uuid()));
        self.node_key
            .push(e.flow.as_ref().map(|f| f.node_key.clone()));
        self.state.push(e.state.as_str());
        self.attempt.push(i64::from(e.attempt));
        self.lease_epoch.push(signed(e.lease_epoch));
        self.attempts_allowed.push(i64::from(e.attempts_allowed));
        self.releases.push(i64::from(e.releases));
        self.reuse_attempt.push(e.reuse_attempt);
        self.lease_until.push(e.lease_until);
        self.attempt_deadline.push(e.attempt_deadline);
        self.worker_id.push(e.worker_id.clone());
        self.ready_at.push(e.ready_at);
        self.created_at.push(e.created_at);
        self.updated_at.push(e.updated_at);
        self.finished_at.push(e.finished_at);
        self.result
            .push(e.result.as_ref().map(|r| r.as_str().to_owned()));
        self.error.push(e.error.clone());
        self.attempts.push(to_json(&e.attempts)?);
        self.inputs
            .push(e.inputs.as_ref().map(to_json).transpose()?);
        self.concurrency_key.push(e.concurrency_key.clone());
        self.rate_key.push(e.rate_key.clone());
        self.fairness_key.push(e.fairness_key.clone());
        Ok(())
    }
}

/// A Postgres array literal (`{"a","b"}`) of `items`, each quoted and
/// escaped, so any text survives the `::text[]` cast.
fn to_pg_array(items: &[String]) -> String {
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}
