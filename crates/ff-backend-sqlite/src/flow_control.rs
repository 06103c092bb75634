//! Flow control: the policies in `flow_policies`, the claim's state in
//! `rate_buckets`, `budget_usage` and `fair_credits`, and the claim of a
//! namespace that has policies, decided by `ff_core`'s gate inside the
//! writer's transaction (one writer, so nothing runs between the count
//! and the take).

use std::cell::RefCell;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Rows};

use ff_core::flow_control::{
    select, Bucket, ClaimGate, Credits, LaneSource, PassedOver, Policy, PolicySet, PolicySpec,
    Usage,
};
use ff_core::{ClaimRequest, EngineError, Execution, ExecutionId, FlowControlStore, Millis};

use crate::command::WriteCtx;
use crate::rows::{self, select_stored, Stamp};
use crate::{SqlResult, SqliteBackend};

/// What every limited candidate passes besides being claimable: none of
/// the keys at their limit (`?5`), the rate keys without a token (`?6`) or
/// the breached scopes (`?7`), each a JSON array, so a backlog held by one
/// limit is never read, let alone in the way of the work behind it.
macro_rules! not_held {
    () => {
        " AND (concurrency_key IS NULL OR concurrency_key NOT IN (SELECT value FROM json_each(?5))) \
         AND (rate_key IS NULL OR rate_key NOT IN (SELECT value FROM json_each(?6))) \
         AND (fairness_key IS NULL OR fairness_key NOT IN (SELECT value FROM json_each(?7)))"
    };
}

/// One lane's limited candidates in claim order (`?4` is unused).
const LANE_CANDIDATES: &str = concat!(
    select_stored!(),
    " WHERE namespace = ?1 AND lane = ?2 AND state IN ('ready', 'scheduled') \
     AND ready_at <= ?3 AND (deadline IS NULL OR deadline > ?3) AND ?4 IS NULL",
    not_held!(),
    " ORDER BY priority DESC, ready_at, id"
);

/// One lane's candidates of one fairness key (`?4`, NULL for the
/// namespace's own) in claim order, through `executions_fair_claim`.
const FAIR_CANDIDATES: &str = concat!(
    select_stored!(),
    " WHERE namespace = ?1 AND lane = ?2 AND fairness_key IS ?4 \
     AND state IN ('ready', 'scheduled') AND ready_at <= ?3 \
     AND (deadline IS NULL OR deadline > ?3)",
    not_held!(),
    " ORDER BY priority DESC, ready_at, id"
);

/// The running count of every concurrency key of a namespace.
const RUNNING_BY_KEY: &str = "SELECT concurrency_key, COUNT(*) FROM executions \
     WHERE namespace = ?1 AND state = 'running' AND concurrency_key IS NOT NULL \
     AND lease_until > ?2 AND (attempt_deadline IS NULL OR attempt_deadline > ?2) \
     GROUP BY concurrency_key";

/// The fairness keys a lane has seen (`fair_keys`, registered as
/// executions are stored); the namespace's own is read besides.
const FAIR_KEYS: &str = "SELECT key FROM fair_keys WHERE namespace = ?1 AND lane = ?2 ORDER BY key";

const RUNNING_WITH_KEY: &str = "SELECT COUNT(*) FROM executions \
     WHERE namespace = ?1 AND concurrency_key = ?2 AND state = 'running' \
     AND lease_until > ?3 AND (attempt_deadline IS NULL OR attempt_deadline > ?3)";

type Candidate = (Execution, Stamp);

pub(crate) fn load_policies(
    conn: &Connection,
    namespace: &str,
) -> Result<Vec<Policy>, EngineError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT name, version, spec, updated_at FROM flow_policies \
             WHERE namespace = ?1 ORDER BY name",
        )
        .db()?;
    let mut rows = stmt.query([namespace]).db()?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().db()? {
        let spec: String = row.get(2).db()?;
        out.push(Policy {
            namespace: namespace.to_owned(),
            name: row.get(0).db()?,
            version: row.get(1).db()?,
            spec: serde_json::from_str(&spec).map_err(EngineError::backend)?,
            updated_at: row.get(3).db()?,
        });
    }
    Ok(out)
}

fn running_with_key(
    conn: &Connection,
    namespace: &str,
    key: &str,
    now: Millis,
) -> Result<u32, EngineError> {
    conn.prepare_cached(RUNNING_WITH_KEY)
        .db()?
        .query_row(params![namespace, key, now], |row| row.get(0))
        .db()
}

fn load_bucket(
    conn: &Connection,
    namespace: &str,
    key: &str,
) -> Result<Option<Bucket>, EngineError> {
    conn.prepare_cached("SELECT level, at FROM rate_buckets WHERE namespace = ?1 AND key = ?2")
        .db()?
        .query_row(params![namespace, key], |row| {
            Ok(Bucket {
                level: row.get(0)?,
                at: row.get(1)?,
            })
        })
        .optional()
        .db()
}

fn load_usage(conn: &Connection, namespace: &str, policy: &str) -> Result<Usage, EngineError> {
    load_json(
        conn,
        "SELECT usage FROM budget_usage WHERE namespace = ?1 AND policy = ?2",
        namespace,
        policy,
    )
}

fn load_credits(conn: &Connection, namespace: &str, lane: &str) -> Result<Credits, EngineError> {
    load_json(
        conn,
        "SELECT credits FROM fair_credits WHERE namespace = ?1 AND lane = ?2",
        namespace,
        lane,
    )
}

/// The JSON document `sql` reads for (`namespace`, `name`), or the default
/// when there is none.
fn load_json<T: serde::de::DeserializeOwned + Default>(
    conn: &Connection,
    sql: &str,
    namespace: &str,
    name: &str,
) -> Result<T, EngineError> {
    let text: Option<String> = conn
        .prepare_cached(sql)
        .db()?
        .query_row(params![namespace, name], |row| row.get(0))
        .optional()
        .db()?;
    text.map(|t| serde_json::from_str(&t).map_err(EngineError::backend))
        .transpose()
        .map(Option::unwrap_or_default)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, EngineError> {
    serde_json::to_string(value).map_err(EngineError::backend)
}

/// The candidates of a namespace with policies: each lane's candidates
/// (per fairness key on a fair-share lane) through `ff_core`'s select,
/// the rate buckets and fair-share credits it changed stored before the
/// claim takes the picks.
pub(crate) fn pick_limited(
    ctx: &WriteCtx<'_>,
    req: &ClaimRequest,
    set: &PolicySet,
    tally: &PassedOver,
) -> Result<Vec<Candidate>, EngineError> {
    let conn = ctx.conn();
    let now = ctx.now;
    let ns = req.namespace.as_str();
    let mut gate = ClaimGate::new(set, now);
    for (name, _) in set.budgets() {
        gate.set_usage(name, load_usage(conn, ns, name)?);
    }
    let mut stmt = conn.prepare_cached(RUNNING_BY_KEY).db()?;
    let mut rows = stmt.query(params![ns, now]).db()?;
    while let Some(row) = rows.next().db()? {
        let key: String = row.get(0).db()?;
        gate.set_running(&key, row.get(1).db()?);
    }
    let mut stmt = conn
        .prepare_cached("SELECT key, level, at FROM rate_buckets WHERE namespace = ?1")
        .db()?;
    let mut rows = stmt.query([ns]).db()?;
    while let Some(row) = rows.next().db()? {
        let key: String = row.get(0).db()?;
        let bucket = Bucket {
            level: row.get(1).db()?,
            at: row.get(2).db()?,
        };
        gate.set_bucket(&key, Some(bucket));
    }
    let held = gate.held_keys();
    let (full, empty, broke) = (
        to_json(&held.full)?,
        to_json(&held.empty)?,
        to_json(&held.broke)?,
    );
    // Every cursor's statement, with the fairness key it reads (`None`: a
    // plain lane). Each statement text differs (a trailing comment) so
    // every one of them stays in the statement cache.
    let mut specs: Vec<(usize, Option<Option<String>>)> = Vec::new();
    for (lane_at, lane) in req.lanes.iter().enumerate() {
        if set.fair_share(lane).is_none() {
            specs.push((lane_at, None));
            continue;
        }
        let mut keys: Vec<Option<String>> = conn
            .prepare_cached(FAIR_KEYS)
            .db()?
            .query_map(params![ns, lane], |row| row.get::<_, String>(0))
            .db()?
            .map(|k| k.map(Some))
            .collect::<Result<_, _>>()
            .db()?;
        keys.push(None);
        specs.extend(keys.into_iter().map(|k| (lane_at, Some(k))));
    }
    let mut stmts = Vec::with_capacity(specs.len());
    for (i, (_, key)) in specs.iter().enumerate() {
        let base = if key.is_some() {
            FAIR_CANDIDATES
        } else {
            LANE_CANDIDATES
        };
        stmts.push(conn.prepare_cached(&format!("{base} -- cursor {i}")).db()?);
    }
    let failure = RefCell::new(None);
    let mut lanes: Vec<LaneSource<_>> = Vec::with_capacity(req.lanes.len());
    let mut fair_lanes = Vec::new();
    let mut stmts = stmts.iter_mut();
    let mut at = 0;
    for (lane_at, lane) in req.lanes.iter().enumerate() {
        let mut cursors = Vec::new();
        while at < specs.len() && specs[at].0 == lane_at {
            let stmt = stmts
                .next()
                .ok_or_else(|| EngineError::backend("a cursor without its statement"))?;
            let key = specs[at].1.clone().flatten();
            let rows = stmt
                .query(params![ns, lane, now, key, full, empty, broke])
                .db()?;
            cursors.push((specs[at].1.clone(), claimable(rows, req, now, &failure)));
            at += 1;
        }
        match set.fair_share(lane) {
            None => lanes.extend(cursors.into_iter().map(|(_, c)| LaneSource::plain(c))),
            Some(fair) => {
                fair_lanes.push((lanes.len(), lane));
                let keys = cursors
                    .into_iter()
                    .map(|(key, c)| {
                        let key = key.flatten().unwrap_or_else(|| ns.to_owned());
                        let weight = fair.weight(&key);
                        (key, weight, c.peekable())
                    })
                    .collect();
                lanes.push(LaneSource::Fair {
                    keys,
                    credits: load_credits(conn, ns, lane)?,
                });
            }
        }
    }
    // Every running key and every bucket is loaded: a key not among them
    // runs nothing, a bucket not among them is full.
    let prepare = |_: &mut ClaimGate<'_>, _: &Execution| {};
    let mut passed = Vec::new();
    let picked = select(
        &mut lanes,
        &mut gate,
        req.n as usize,
        |(e, _)| e,
        prepare,
        &mut passed,
    );
    tally.add(&passed);
    if let Some(e) = failure.borrow_mut().take() {
        return Err(e);
    }
    for (key, bucket) in gate.changed_buckets() {
        conn.prepare_cached(
            "INSERT INTO rate_buckets (namespace, key, level, at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (namespace, key) DO UPDATE SET level = excluded.level, at = excluded.at",
        )
        .db()?
        .execute(params![ns, key, bucket.level, bucket.at])
        .db()?;
    }
    for (i, lane) in fair_lanes {
        if let Some(credits) = lanes[i].credits() {
            conn.prepare_cached(
                "INSERT INTO fair_credits (namespace, lane, credits) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (namespace, lane) DO UPDATE SET credits = excluded.credits",
            )
            .db()?
            .execute(params![ns, lane, to_json(credits)?])
            .db()?;
        }
    }
    Ok(picked)
}

/// The claimable rows of a cursor for this worker; a read error ends the
/// cursor and is kept in `failure`.
fn claimable<'a>(
    mut rows: Rows<'a>,
    req: &'a ClaimRequest,
    now: Millis,
    failure: &'a RefCell<Option<EngineError>>,
) -> impl Iterator<Item = Candidate> + 'a {
    std::iter::from_fn(move || loop {
        let row = match rows.next().db() {
            Ok(Some(row)) => rows::read_stored(row),
            Ok(None) => return None,
            Err(e) => Err(e),
        };
        match row {
            Ok((exec, stamp)) => {
                if exec.is_claimable(now) && exec.capabilities_met_by(&req.capabilities) {
                    return Some((exec, stamp));
                }
            }
            Err(e) => {
                failure.borrow_mut().get_or_insert(e);
                return None;
            }
        }
    })
}

#[async_trait]
impl FlowControlStore for SqliteBackend {
    async fn load_policies(&self, namespace: &str) -> Result<Vec<Policy>, EngineError> {
        let namespace = namespace.to_owned();
        self.inner
            .readers
            .read(move |conn| load_policies(conn, &namespace))
            .await
    }

    async fn store_policy(
        &self,
        namespace: &str,
        name: &str,
        spec: &PolicySpec,
    ) -> Result<Policy, EngineError> {
        let (namespace, name, spec) = (namespace.to_owned(), name.to_owned(), spec.clone());
        self.inner
            .writer
            .write(move |ctx| {
                let text = to_json(&spec)?;
                let version: u64 = ctx
                    .conn()
                    .prepare_cached(
                        "INSERT INTO flow_policies (namespace, name, version, spec, updated_at) \
                         VALUES (?1, ?2, 1, ?3, ?4) ON CONFLICT (namespace, name) DO UPDATE \
                         SET version = version + 1, spec = excluded.spec, \
                         updated_at = excluded.updated_at RETURNING version",
                    )
                    .db()?
                    .query_row(params![namespace, name, text, ctx.now], |row| row.get(0))
                    .db()?;
                // A raised limit may free work a claim waits for.
                ctx.wake();
                Ok(Policy {
                    namespace,
                    name,
                    version,
                    spec,
                    updated_at: ctx.now,
                })
            })
            .await
    }

    async fn remove_policy(&self, namespace: &str, name: &str) -> Result<bool, EngineError> {
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        self.inner
            .writer
            .write(move |ctx| {
                let conn = ctx.conn();
                conn.prepare_cached(
                    "DELETE FROM budget_usage WHERE namespace = ?1 AND policy = ?2",
                )
                .db()?
                .execute(params![namespace, name])
                .db()?;
                let removed = conn
                    .prepare_cached("DELETE FROM flow_policies WHERE namespace = ?1 AND name = ?2")
                    .db()?
                    .execute(params![namespace, name])
                    .db()?;
                if removed > 0 {
                    ctx.wake();
                }
                Ok(removed > 0)
            })
            .await
    }

    async fn load_usage(&self, namespace: &str, policy: &str) -> Result<Usage, EngineError> {
        let (namespace, policy) = (namespace.to_owned(), policy.to_owned());
        self.inner
            .readers
            .read(move |conn| load_usage(conn, &namespace, &policy))
            .await
    }

    async fn update_usage(
        &self,
        namespace: &str,
        policy: &str,
        mut update: Box<dyn FnMut(Usage) -> Usage + Send>,
    ) -> Result<Usage, EngineError> {
        let (namespace, policy) = (namespace.to_owned(), policy.to_owned());
        self.inner
            .writer
            .write(move |ctx| {
                let conn = ctx.conn();
                let usage = update(load_usage(conn, &namespace, &policy)?);
                conn.prepare_cached(
                    "INSERT INTO budget_usage (namespace, policy, usage) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (namespace, policy) DO UPDATE SET usage = excluded.usage",
                )
                .db()?
                .execute(params![namespace, policy, to_json(&usage)?])
                .db()?;
                // A window that started over may free a scope's work.
                ctx.wake();
                Ok(usage)
            })
            .await
    }

    async fn running_with_key(&self, namespace: &str, key: &str) -> Result<u32, EngineError> {
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        let now = self.inner.clock.now_ms();
        self.inner
            .readers
            .read(move |conn| running_with_key(conn, &namespace, &key, now))
            .await
    }

    async fn load_bucket(&self, namespace: &str, key: &str) -> Result<Option<Bucket>, EngineError> {
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        self.inner
            .readers
            .read(move |conn| load_bucket(conn, &namespace, &key))
            .await
    }

    fn passed_over_tally(&self) -> &PassedOver {
        &self.inner.passed_over
    }

    async fn pending_flow_members(
        &self,
        namespace: &str,
        scope: &str,
    ) -> Result<Vec<ExecutionId>, EngineError> {
        let (namespace, scope) = (namespace.to_owned(), scope.to_owned());
        self.inner
            .readers
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT id FROM executions WHERE namespace = ?1 \
                         AND fairness_key = ?2 AND flow_id IS NOT NULL \
                         AND state IN ('ready', 'scheduled', 'blocked') AND attempt = 0",
                    )
                    .db()?;
                let mut rows = stmt.query(params![namespace, scope]).db()?;
                let mut ids = Vec::new();
                while let Some(row) = rows.next().db()? {
                    ids.push(rows::read_id(row, 0)?);
                }
                Ok(ids)
            })
            .await
    }
}
