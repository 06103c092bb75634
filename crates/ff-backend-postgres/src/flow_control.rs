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
    select, Bucket, ClaimGate, Credits, LaneSource, PassedOver, Policy, PolicySet, PolicySpec,
    Standing, Usage,
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

/// A plain lane's (`$2`) first `$5` limited candidates in claim order.
const LANE_CANDIDATES: &str = concat!(
    select_stored!(),
    " WHERE lane = $2 AND ",
    limited_filter!(),
    " ORDER BY priority DESC, ready_at, id LIMIT $5"
);

/// A fair-share lane's (`$2`) first `$5` limited candidates of each
/// fairness key `$9`, through `executions_fair_claim`.
const FAIR_CANDIDATES: &str = concat!(
    "SELECT c.* FROM unnest($9::text[]) AS k(key) CROSS JOIN LATERAL (",
    select_stored!(),
    " WHERE lane = $2 AND COALESCE(fairness_key, namespace) = k.key AND ",
    limited_filter!(),
    " ORDER BY priority DESC, ready_at, id LIMIT $5) c"
);

/// The distinct fairness keys with claimable work in a lane, by a skip
/// scan of `executions_fair_claim` (one probe per key, not per row).
const FAIR_KEYS: &str = "WITH RECURSIVE k(key) AS ( \
       SELECT min(COALESCE(fairness_key, namespace)) FROM executions \
       WHERE namespace = $1 AND lane = $2 AND state IN ('ready', 'scheduled') \
     UNION ALL \
       SELECT (SELECT min(COALESCE(fairness_key, namespace)) FROM executions \
               WHERE namespace = $1 AND lane = $2 AND state IN ('ready', 'scheduled') \
               AND COALESCE(fairness_key, namespace) > k.key) \
       FROM k WHERE k.key IS NOT NULL) \
     SELECT key FROM k WHERE key IS NOT NULL";

/// The picks (`$1`, still claimable) moved to running at `$2` by worker `$3`.
const CLAIM_PICKED: &str = claim_sql!(
    "SELECT id AS picked_id FROM executions WHERE id = ANY ($1::uuid[]) \
     AND state IN ('ready', 'scheduled') FOR UPDATE",
    "$2",
    "$3"
);

const RUNNING_BY_KEY: &str = "SELECT concurrency_key, count(*) FROM executions \
     WHERE namespace = $1 AND state = 'running' AND concurrency_key IS NOT NULL \
     AND lease_until > $2 AND (attempt_deadline IS NULL OR attempt_deadline > $2) \
     GROUP BY concurrency_key";

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

fn parse_usage(text: Option<String>) -> Result<Usage, EngineError> {
    text.map(|t| serde_json::from_str(&t).map_err(EngineError::backend))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// The limited claim, or `None` when the namespace has no policies after
/// all (its claims go back to the one statement).
pub(crate) async fn claim_limited(
    backend: &PostgresBackend,
    req: &ClaimRequest,
) -> Result<Option<Vec<Claimed>>, EngineError> {
    let ns = req.namespace.as_str();
    let mut tx = backend.inner.pool.begin().await.db()?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('ff_claim:' || current_schema() || ':' || $1, 0))")
        .bind(ns)
        .execute(&mut *tx)
        .await
        .db()?;
    let policies = load_policies(&mut *tx, ns).await?;
    if policies.is_empty() {
        backend.mark_limited(ns, false);
        return Ok(None);
    }
    backend.mark_limited(ns, true);
    let set = PolicySet::new(&policies);
    // Read under the lock, after the transitions it sees, so no attempt
    // here starts before one it follows ended.
    let now = backend.now();
    let mut gate = ClaimGate::new(&set, now);
    let held = load_state(&mut tx, &set, &mut gate, ns, now).await?;
    let mut lanes = Vec::with_capacity(req.lanes.len());
    let mut credits_of = Vec::new();
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
                    .fetch_all(&mut *tx)
                    .await
                    .db()?;
                let rows = held
                    .bind(sqlx::query(FAIR_CANDIDATES), req, lane, now, want)
                    .bind(&keys)
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
                let text: Option<String> = sqlx::query_scalar(
                    "SELECT credits FROM fair_credits WHERE namespace = $1 AND lane = $2 \
                     FOR UPDATE",
                )
                .bind(ns)
                .bind(lane)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
                let credits: Credits = text
                    .map(|t| serde_json::from_str(&t).map_err(EngineError::backend))
                    .transpose()?
                    .unwrap_or_default();
                credits_of.push((lanes.len(), lane.clone()));
                lanes.push(LaneSource::Fair {
                    keys: by_key
                        .into_iter()
                        .map(|(k, e)| {
                            let weight = fair.weight(&k);
                            (k, weight, e.into_iter().peekable())
                        })
                        .collect(),
                    credits,
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
    let rows = sqlx::query(CLAIM_PICKED)
        .bind(&ids)
        .bind(now)
        .bind(&req.worker_id)
        .fetch_all(&mut *tx)
        .await
        .db()?;
    let changed = gate.changed_buckets();
    if !changed.is_empty() {
        let (keys, levels, ats): (Vec<String>, Vec<i64>, Vec<i64>) = changed
            .into_iter()
            .map(|(k, b)| (k, rows::signed(b.level), b.at))
            .fold(
                (Vec::new(), Vec::new(), Vec::new()),
                |mut acc, (k, l, a)| {
                    acc.0.push(k);
                    acc.1.push(l);
                    acc.2.push(a);
                    acc
                },
            );
        sqlx::query(
            "INSERT INTO rate_buckets (namespace, key, level, at) \
             SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bigint[]) \
             ON CONFLICT (namespace, key) DO UPDATE SET level = excluded.level, at = excluded.at",
        )
        .bind(ns)
        .bind(keys)
        .bind(levels)
        .bind(ats)
        .execute(&mut *tx)
        .await
        .db()?;
    }
    for (i, lane) in credits_of {
        if let Some(credits) = lanes[i].credits() {
            sqlx::query(
                "INSERT INTO fair_credits (namespace, lane, credits) VALUES ($1, $2, $3) \
                 ON CONFLICT (namespace, lane) DO UPDATE SET credits = excluded.credits",
            )
            .bind(ns)
            .bind(lane)
            .bind(to_json(credits)?)
            .execute(&mut *tx)
            .await
            .db()?;
        }
    }
    tx.commit().await.db()?;
    // Answered in the order they were picked, which a fair-share lane
    // decides rather than the lane order.
    let mut claimed = read_all(&rows)?;
    claimed.sort_by_key(|e| ids.iter().position(|id| id == e.id.as_uuid()));
    backend.note_churn(claimed.len());
    claimed
        .iter()
        .map(lease::claimed)
        .collect::<Result<_, _>>()
        .map(Some)
}

fn read_all(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<Execution>, EngineError> {
    rows.iter()
        .map(|row| rows::read_stored(row).map(|s| s.exec))
        .collect()
}

/// What a limited claim leaves out in SQL.
#[derive(Default)]
struct HeldKeys {
    /// Concurrency keys at their limit.
    full: Vec<String>,
    /// Rate keys without a token now.
    empty: Vec<String>,
    /// Fairness keys (budget scopes) over a hard limit.
    broke: Vec<String>,
}

impl HeldKeys {
    /// Binds `$1` to `$8` of a candidates query ([`limited_filter!`]).
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

/// Loads the running counts, buckets and usage into `gate`, and what is
/// held outright.
async fn load_state(
    tx: &mut Transaction<'_, Postgres>,
    set: &PolicySet,
    gate: &mut ClaimGate<'_>,
    ns: &str,
    now: Millis,
) -> Result<HeldKeys, EngineError> {
    let mut held = HeldKeys::default();
    let running = sqlx::query(RUNNING_BY_KEY)
        .bind(ns)
        .bind(now)
        .fetch_all(&mut **tx)
        .await
        .db()?;
    for row in &running {
        let key: String = row.try_get(0).db()?;
        let n = u32::try_from(row.try_get::<i64, _>(1).db()?).unwrap_or(u32::MAX);
        if set.concurrency_limit(&key).is_some_and(|limit| n >= limit) {
            held.full.push(key.clone());
        }
        gate.set_running(&key, n);
    }
    let buckets = sqlx::query("SELECT key, level, at FROM rate_buckets WHERE namespace = $1")
        .bind(ns)
        .fetch_all(&mut **tx)
        .await
        .db()?;
    for row in &buckets {
        let key: String = row.try_get(0).db()?;
        let bucket = Bucket {
            level: u64::try_from(row.try_get::<i64, _>(1).db()?).unwrap_or(0),
            at: row.try_get(2).db()?,
        };
        if let Some(rate) = set.rate_for(&key) {
            if rate.take(bucket, now).is_err() {
                held.empty.push(key.clone());
            }
        }
        gate.set_bucket(&key, Some(bucket));
    }
    let budgets: HashMap<String, Option<String>> =
        sqlx::query("SELECT policy, usage FROM budget_usage WHERE namespace = $1")
            .bind(ns)
            .fetch_all(&mut **tx)
            .await
            .db()?
            .iter()
            .map(|row| Ok((row.try_get(0).db()?, row.try_get(1).db()?)))
            .collect::<Result<_, EngineError>>()?;
    for (name, budget) in set.budgets() {
        let usage = parse_usage(budgets.get(name).cloned().flatten())?;
        if matches!(
            budget.standing(&budget.current(usage.clone(), now)),
            Standing::Hard { .. }
        ) {
            held.broke.push(budget.scope.clone());
        }
        gate.set_usage(name, usage);
    }
    Ok(held)
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
        parse_usage(text)
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
        let usage = update(parse_usage(text)?);
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
