//! Flow control: the policies in `flow_policies`, the claim's state in
//! `rate_buckets`, `budget_usage` and `fair_credits`, and the claim of a
//! namespace that has policies. That claim runs in one transaction under
//! the namespace's advisory lock, so no other limited claim counts between
//! its count and its take; the one-statement claim takes nothing in such a
//! namespace. Keys already at their limit, rate keys without a token and
//! hard-breached scopes are left out in SQL, so they never hide work, and
//! `ff_core`'s gate decides the rest.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use sqlx::{Postgres, Row, Transaction};

use ff_core::flow_control::{
    fair_fetch, select, Bucket, ClaimGate, Credits, HeldKeys, LaneSource, PassedOver, Policy,
    PolicySet, PolicySpec, Usage,
};
use ff_core::{
    lease, ClaimRequest, Claimed, EngineError, Execution, ExecutionId, FlowControlStore, Millis,
};

use crate::leases::claim_sql;
use crate::rows::{self, select_stored, to_json};
use crate::{PgResult, PostgresBackend};

/// Candidates a limited claim reads per lane (or per fairness key) beyond
/// the `n` it wants, for the ones the gate holds within the batch.
const SLACK: i64 = 32;

/// The filter every limited candidate passes: claimable now (`$3`), the
/// worker's capabilities (`$4`), and none of the keys at their limit
/// (`$6`), the rate keys without a token (`$7`) or the hard-breached
/// scopes (`$8`).
macro_rules! limited_filter {
    () => {
        "namespace = $1 AND state IN ('ready', 'scheduled') AND ready_at <= $3 \
         AND (deadline IS NULL OR deadline > $3) AND capabilities <@ $4 \
         AND (concurrency_key IS NULL OR concurrency_key <> ALL ($6)) \
         AND (rate_key IS NULL OR rate_key <> ALL ($7)) \
         AND (fairness_key IS NULL OR fairness_key <> ALL ($8))"
    };
}

/// A plain lane's (`$2`) first `$5` limited candidates in claim order,
/// locked, so no transition changes one between the pick and the take
/// (which would spend its token for nothing).
const LANE_CANDIDATES: &str = concat!(
    select_stored!(),
    " WHERE lane = $2 AND ",
    limited_filter!(),
    " ORDER BY priority DESC, ready_at, id LIMIT $5 FOR UPDATE"
);

/// A fair-share lane's (`$2`) first limited candidates of each fairness
/// key `$9`, as many as `$10` says for it, through `executions_fair_claim`
/// (`$5` is unused).
const FAIR_CANDIDATES: &str = concat!(
    "SELECT c.* FROM unnest($9::text[], $10::bigint[]) AS k(key, n) CROSS JOIN LATERAL (",
    select_stored!(),
    " WHERE lane = $2 AND COALESCE(fairness_key, namespace) = k.key AND $5 > 0 AND ",
    limited_filter!(),
    " ORDER BY priority DESC, ready_at, id LIMIT k.n FOR UPDATE) c"
);

/// The fairness keys of a lane (`$2`) with work due at `$3`: of those it
/// has seen (`fair_keys`, registered as executions are stored) and the
/// namespace's own, each one probe of `executions_fair_claim`.
const FAIR_KEYS: &str = "SELECT k.key FROM ( \
       SELECT key FROM fair_keys WHERE namespace = $1 AND lane = $2 UNION SELECT $1::text) k \
     WHERE EXISTS (SELECT 1 FROM executions WHERE namespace = $1 AND lane = $2 \
       AND COALESCE(fairness_key, namespace) = k.key AND state IN ('ready', 'scheduled') \
       AND ready_at <= $3) \
     ORDER BY 1";

/// The limited claim's one write: the picks (`$1`, still claimable) moved
/// to running at `$2` by worker `$3`, and the rate buckets (`$5`..`$7`)
/// and fair-share credits (`$8`, `$9`) of namespace `$4` stored.
const CLAIM_PICKED: &str = claim_sql!(
    "buckets AS (INSERT INTO rate_buckets (namespace, key, level, at) \
       SELECT $4, * FROM unnest($5::text[], $6::bigint[], $7::bigint[]) \
       ON CONFLICT (namespace, key) DO UPDATE SET level = excluded.level, at = excluded.at), \
     credits AS (INSERT INTO fair_credits (namespace, lane, credits) \
       SELECT $4, * FROM unnest($8::text[], $9::text[]) \
       ON CONFLICT (namespace, lane) DO UPDATE SET credits = excluded.credits), ",
    "SELECT id AS picked_id FROM executions WHERE id = ANY ($1::uuid[]) \
     AND state IN ('ready', 'scheduled') FOR UPDATE",
    "$2",
    "$3"
);

/// Everything a limited claim of namespace `$1` at `$2` reads before it
/// picks, in one statement, as JSON: the policies, the running count of
/// each concurrency key, the rate buckets, the budgets' usage and the
/// credits of the lanes `$3`.
const CLAIM_STATE: &str = "SELECT \
     (SELECT coalesce(json_agg(json_build_array(name, version, spec, updated_at) ORDER BY name), '[]') \
        FROM flow_policies WHERE namespace = $1)::text, \
     (SELECT coalesce(json_agg(json_build_array(concurrency_key, n)), '[]') FROM ( \
        SELECT concurrency_key, count(*) AS n FROM executions \
        WHERE namespace = $1 AND state = 'running' AND concurrency_key IS NOT NULL \
        AND lease_until > $2 AND (attempt_deadline IS NULL OR attempt_deadline > $2) \
        GROUP BY concurrency_key) r)::text, \
     (SELECT coalesce(json_agg(json_build_array(key, level, at)), '[]') \
        FROM rate_buckets WHERE namespace = $1)::text, \
     (SELECT coalesce(json_agg(json_build_array(policy, usage)), '[]') \
        FROM budget_usage WHERE namespace = $1)::text, \
     (SELECT coalesce(json_agg(json_build_array(lane, credits)), '[]') \
        FROM fair_credits WHERE namespace = $1 AND lane = ANY ($3))::text";

impl PostgresBackend {
    pub(crate) fn is_limited(&self, namespace: &str) -> bool {
        self.limited_set().contains(namespace)
    }

    fn mark_limited(&self, namespace: &str, limited: bool) {
        let mut set = self.limited_set();
        if limited {
            set.insert(namespace.to_owned());
        } else {
            set.remove(namespace);
        }
    }

    fn limited_set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.inner
            .limited
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether `namespace` has policies (remembered for its next claims).
pub(crate) async fn has_policies(
    backend: &PostgresBackend,
    namespace: &str,
) -> Result<bool, EngineError> {
    let has: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM flow_policies WHERE namespace = $1)")
            .bind(namespace)
            .fetch_one(&backend.inner.pool)
            .await
            .db()?;
    backend.mark_limited(namespace, has);
    Ok(has)
}

async fn load_policies<'e>(
    conn: impl sqlx::PgExecutor<'e>,
    namespace: &str,
) -> Result<Vec<Policy>, EngineError> {
    let rows = sqlx::query(
        "SELECT name, version, spec, updated_at FROM flow_policies \
         WHERE namespace = $1 ORDER BY name",
    )
    .bind(namespace)
    .fetch_all(conn)
    .await
    .db()?;
    rows.iter()
        .map(|row| {
            let spec: &str = row.try_get(2).db()?;
            Ok(Policy {
                namespace: namespace.to_owned(),
                name: row.try_get(0).db()?,
                version: u64::try_from(row.try_get::<i64, _>(1).db()?).unwrap_or(0),
                spec: serde_json::from_str(spec).map_err(EngineError::backend)?,
                updated_at: row.try_get(3).db()?,
            })
        })
        .collect()
}

/// A stored JSON document, or the default when there is none.
fn json_or_default<T: serde::de::DeserializeOwned + Default>(
    text: Option<String>,
) -> Result<T, EngineError> {
    text.map(json).transpose().map(Option::unwrap_or_default)
}

/// The limited claim, or `None` when the namespace has no policies after
/// all (its claims go back to the one statement): under the lock, one
/// read of the state, the candidates of each lane, one write, the commit.
pub(crate) async fn claim_limited(
    backend: &PostgresBackend,
    req: &ClaimRequest,
) -> Result<Option<Vec<Claimed>>, EngineError> {
    let ns = req.namespace.as_str();
    let mut tx = backend.inner.pool.begin().await.db()?;
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('ff_claim:' || current_schema() || ':' || $1, 0))",
    )
    .bind(ns)
    .execute(&mut *tx)
    .await
    .db()?;
    // Read under the lock, after the transitions it sees, so no attempt
    // here starts before one it follows ended.
    let now = backend.now();
    let state = ClaimState::read(&mut tx, req, now).await?;
    if state.policies.is_empty() {
        backend.mark_limited(ns, false);
        return Ok(None);
    }
    backend.mark_limited(ns, true);
    let set = PolicySet::new(&state.policies);
    let mut gate = ClaimGate::new(&set, now);
    let held = state.load(&set, &mut gate)?;
    let mut lanes = Vec::with_capacity(req.lanes.len());
    let mut fair_lanes = Vec::new();
    let want = i64::from(req.n) + SLACK;
    for lane in &req.lanes {
        match set.fair_share(lane) {
            None => {
                let rows = held
                    .bind(sqlx::query(LANE_CANDIDATES), req, lane, now, want)
                    .fetch_all(&mut *tx)
                    .await
                    .db()?;
                lanes.push(LaneSource::plain(read_all(&rows)?.into_iter()));
            }
            Some(fair) => {
                let keys: Vec<String> = sqlx::query_scalar(FAIR_KEYS)
                    .bind(ns)
                    .bind(lane)
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await
                    .db()?;
                let total: u32 = keys.iter().map(|k| fair.weight(k)).sum();
                let limits: Vec<i64> = keys
                    .iter()
                    .map(|k| fair_fetch(req.n as usize, fair.weight(k), total) as i64)
                    .collect();
                let rows = held
                    .bind(sqlx::query(FAIR_CANDIDATES), req, lane, now, want)
                    .bind(&keys)
                    .bind(&limits)
                    .fetch_all(&mut *tx)
                    .await
                    .db()?;
                let mut by_key: BTreeMap<String, Vec<Execution>> = BTreeMap::new();
                for exec in read_all(&rows)? {
                    by_key
                        .entry(exec.fairness().to_owned())
                        .or_default()
                        .push(exec);
                }
                fair_lanes.push((lanes.len(), lane.clone()));
                lanes.push(LaneSource::Fair {
                    keys: by_key
                        .into_iter()
                        .map(|(k, e)| {
                            let weight = fair.weight(&k);
                            (k, weight, e.into_iter().peekable())
                        })
                        .collect(),
                    credits: state.credits(lane)?,
                });
            }
        }
    }
    let mut passed = Vec::new();
    let picked = select(
        &mut lanes,
        &mut gate,
        req.n as usize,
        |e| e,
        |_, _| {},
        &mut passed,
    );
    backend.inner.passed_over.add(&passed);
    let ids: Vec<uuid::Uuid> = picked.iter().map(|e| *e.id.as_uuid()).collect();
    let (mut keys, mut levels, mut ats) = (Vec::new(), Vec::new(), Vec::new());
    for (key, bucket) in gate.changed_buckets() {
        keys.push(key);
        levels.push(rows::signed(bucket.level));
        ats.push(bucket.at);
    }
    let (mut credit_lanes, mut credits) = (Vec::new(), Vec::new());
    for (i, lane) in fair_lanes {
        if let Some(c) = lanes[i].credits() {
            credit_lanes.push(lane);
            credits.push(to_json(c)?);
        }
    }
    let rows = sqlx::query(CLAIM_PICKED)
        .bind(&ids)
        .bind(now)
        .bind(&req.worker_id)
        .bind(ns)
        .bind(keys)
        .bind(levels)
        .bind(ats)
        .bind(credit_lanes)
        .bind(credits)
        .fetch_all(&mut *tx)
        .await
        .db()?;
    tx.commit().await.db()?;
    // Answered in the order they were picked, which a fair-share lane
    // decides rather than the lane order.
    let order: HashMap<uuid::Uuid, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut claimed = read_all(&rows)?;
    claimed.sort_by_key(|e| order.get(e.id.as_uuid()).copied());
    backend.note_churn(claimed.len());
    claimed
        .iter()
        .map(lease::claimed)
        .collect::<Result<_, _>>()
        .map(Some)
}

/// What [`CLAIM_STATE`] read, as JSON texts.
struct ClaimState {
    policies: Vec<Policy>,
    running: String,
    buckets: String,
    usage: String,
    credits: String,
}

impl ClaimState {
    async fn read(
        tx: &mut Transaction<'_, Postgres>,
        req: &ClaimRequest,
        now: Millis,
    ) -> Result<Self, EngineError> {
        let row = sqlx::query(CLAIM_STATE)
            .bind(&req.namespace)
            .bind(now)
            .bind(&req.lanes)
            .fetch_one(&mut **tx)
            .await
            .db()?;
        let policies: Vec<(String, i64, String, i64)> = json(row.try_get(0).db()?)?;
        let policies = policies
            .into_iter()
            .map(|(name, version, spec, updated_at)| {
                Ok(Policy {
                    namespace: req.namespace.clone(),
                    name,
                    version: u64::try_from(version).unwrap_or(0),
                    spec: serde_json::from_str(&spec).map_err(EngineError::backend)?,
                    updated_at,
                })
            })
            .collect::<Result<_, EngineError>>()?;
        Ok(Self {
            policies,
            running: row.try_get(1).db()?,
            buckets: row.try_get(2).db()?,
            usage: row.try_get(3).db()?,
            credits: row.try_get(4).db()?,
        })
    }

    /// Loads the running counts, buckets and usage into `gate`, and says
    /// what is held outright.
    fn load(&self, set: &PolicySet, gate: &mut ClaimGate<'_>) -> Result<HeldKeys, EngineError> {
        let running: Vec<(String, i64)> = json(self.running.clone())?;
        for (key, n) in running {
            gate.set_running(&key, u32::try_from(n).unwrap_or(u32::MAX));
        }
        let buckets: Vec<(String, i64, i64)> = json(self.buckets.clone())?;
        for (key, level, at) in buckets {
            let level = u64::try_from(level).unwrap_or(0);
            gate.set_bucket(&key, Some(Bucket { level, at }));
        }
        let usage: HashMap<String, String> = json::<Vec<(String, String)>>(self.usage.clone())?
            .into_iter()
            .collect();
        for (name, _) in set.budgets() {
            gate.set_usage(name, json_or_default::<Usage>(usage.get(name).cloned())?);
        }
        Ok(gate.held_keys())
    }

    /// The stored credits of fair-share lane `lane`.
    fn credits(&self, lane: &str) -> Result<Credits, EngineError> {
        let all: Vec<(String, String)> = json(self.credits.clone())?;
        json_or_default(
            all.into_iter()
                .find(|(l, _)| l == lane)
                .map(|(_, text)| text),
        )
    }
}

fn json<T: serde::de::DeserializeOwned>(text: String) -> Result<T, EngineError> {
    serde_json::from_str(&text).map_err(EngineError::backend)
}

fn read_all(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<Execution>, EngineError> {
    rows.iter()
        .map(|row| rows::read_stored(row).map(|s| s.exec))
        .collect()
}

/// Binds `$1` to `$8` of a candidates query ([`limited_filter!`]).
trait BindHeld {
    fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
        req: &'q ClaimRequest,
        lane: &'q str,
        now: Millis,
        want: i64,
    ) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;
}

impl BindHeld for HeldKeys {
    fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
        req: &'q ClaimRequest,
        lane: &'q str,
        now: Millis,
        want: i64,
    ) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(&req.namespace)
            .bind(lane)
            .bind(now)
            .bind(&req.capabilities)
            .bind(want)
            .bind(&self.full)
            .bind(&self.empty)
            .bind(&self.broke)
    }
}

#[async_trait]
impl FlowControlStore for PostgresBackend {
    async fn load_policies(&self, namespace: &str) -> Result<Vec<Policy>, EngineError> {
        load_policies(&self.inner.pool, namespace).await
    }

    async fn store_policy(
        &self,
        namespace: &str,
        name: &str,
        spec: &PolicySpec,
    ) -> Result<Policy, EngineError> {
        let now = self.now();
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO flow_policies (namespace, name, version, spec, updated_at) \
             VALUES ($1, $2, 1, $3, $4) ON CONFLICT (namespace, name) DO UPDATE \
             SET version = flow_policies.version + 1, spec = excluded.spec, \
             updated_at = excluded.updated_at RETURNING version",
        )
        .bind(namespace)
        .bind(name)
        .bind(to_json(spec)?)
        .bind(now)
        .fetch_one(&self.inner.pool)
        .await
        .db()?;
        self.mark_limited(namespace, true);
        Ok(Policy {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            version: u64::try_from(version).unwrap_or(0),
            spec: spec.clone(),
            updated_at: now,
        })
    }

    async fn remove_policy(&self, namespace: &str, name: &str) -> Result<bool, EngineError> {
        let mut tx = self.inner.pool.begin().await.db()?;
        sqlx::query("DELETE FROM budget_usage WHERE namespace = $1 AND policy = $2")
            .bind(namespace)
            .bind(name)
            .execute(&mut *tx)
            .await
            .db()?;
        let removed = sqlx::query("DELETE FROM flow_policies WHERE namespace = $1 AND name = $2")
            .bind(namespace)
            .bind(name)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
        tx.commit().await.db()?;
        Ok(removed > 0)
    }

    async fn load_usage(&self, namespace: &str, policy: &str) -> Result<Usage, EngineError> {
        let text: Option<String> = sqlx::query_scalar(
            "SELECT usage FROM budget_usage WHERE namespace = $1 AND policy = $2",
        )
        .bind(namespace)
        .bind(policy)
        .fetch_optional(&self.inner.pool)
        .await
        .db()?;
        json_or_default::<Usage>(text)
    }

    async fn update_usage(
        &self,
        namespace: &str,
        policy: &str,
        mut update: Box<dyn FnMut(Usage) -> Usage + Send>,
    ) -> Result<Usage, EngineError> {
        let mut tx = self.inner.pool.begin().await.db()?;
        sqlx::query(
            "INSERT INTO budget_usage (namespace, policy, usage) VALUES ($1, $2, $3) \
             ON CONFLICT (namespace, policy) DO NOTHING",
        )
        .bind(namespace)
        .bind(policy)
        .bind(to_json(&Usage::default())?)
        .execute(&mut *tx)
        .await
        .db()?;
        let text: Option<String> = sqlx::query_scalar(
            "SELECT usage FROM budget_usage WHERE namespace = $1 AND policy = $2 FOR UPDATE",
        )
        .bind(namespace)
        .bind(policy)
        .fetch_optional(&mut *tx)
        .await
        .db()?;
        let usage = update(json_or_default::<Usage>(text)?);
        sqlx::query("UPDATE budget_usage SET usage = $3 WHERE namespace = $1 AND policy = $2")
            .bind(namespace)
            .bind(policy)
            .bind(to_json(&usage)?)
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()?;
        Ok(usage)
    }

    async fn running_with_key(&self, namespace: &str, key: &str) -> Result<u32, EngineError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM executions WHERE namespace = $1 AND concurrency_key = $2 \
             AND state = 'running' AND lease_until > $3 \
             AND (attempt_deadline IS NULL OR attempt_deadline > $3)",
        )
        .bind(namespace)
        .bind(key)
        .bind(self.now())
        .fetch_one(&self.inner.pool)
        .await
        .db()?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn load_bucket(&self, namespace: &str, key: &str) -> Result<Option<Bucket>, EngineError> {
        let row =
            sqlx::query("SELECT level, at FROM rate_buckets WHERE namespace = $1 AND key = $2")
                .bind(namespace)
                .bind(key)
                .fetch_optional(&self.inner.pool)
                .await
                .db()?;
        row.map(|row| {
            Ok(Bucket {
                level: u64::try_from(row.try_get::<i64, _>(0).db()?).unwrap_or(0),
                at: row.try_get(1).db()?,
            })
        })
        .transpose()
    }

    fn passed_over_tally(&self) -> &PassedOver {
        &self.inner.passed_over
    }

    async fn pending_flow_members(
        &self,
        namespace: &str,
        scope: &str,
    ) -> Result<Vec<ExecutionId>, EngineError> {
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT id FROM executions WHERE namespace = $1 \
             AND fairness_key = $2 AND flow_id IS NOT NULL \
             AND state IN ('ready', 'scheduled', 'blocked') AND attempt = 0",
        )
        .bind(namespace)
        .bind(scope)
        .fetch_all(&self.inner.pool)
        .await
        .db()?;
        Ok(ids.into_iter().map(ExecutionId::from_uuid).collect())
    }
}
