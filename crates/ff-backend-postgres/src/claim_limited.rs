//! The claim of a namespace with flow-control policies: one transaction
//! under the namespace's advisory lock, so no other limited claim counts
//! between its count and its take (the one-statement claim takes nothing
//! in such a namespace). Keys already at their limit, rate keys without a
//! token and hard-breached scopes are left out in SQL, so they never hide
//! work, and `ff_core`'s gate decides the rest.
//!
//! Limited claims overlap in their reads: each reads the state and its
//! candidates (locking them) before the lock, and reads the candidates
//! again under it when the policies or the held keys it reads there
//! differ, or when a read came back short (rows another claim held may
//! have been let go since). The re-read under the lock sees every claim
//! committed before it because the transaction runs at READ COMMITTED,
//! Postgres' default, which the backend's transactions assume.

use std::collections::{BTreeMap, HashMap};

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row, Transaction};

use ff_core::flow_control::{
    fair_fetch, select, Bucket, ClaimGate, Credits, Held, HeldKeys, LaneSource, Policy, PolicySet,
    Usage,
};
use ff_core::{lease, ClaimRequest, Claimed, EngineError, Execution, Millis};

use crate::flow_control::{json, json_or_default};
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
/// locked until the claim ends, so no transition changes one between the
/// pick and the take; those another claim holds are skipped.
const LANE_CANDIDATES: &str = concat!(
    select_stored!(),
    " WHERE lane = $2 AND ",
    limited_filter!(),
    " ORDER BY priority DESC, ready_at, id LIMIT $5 FOR UPDATE SKIP LOCKED"
);

/// A fair-share lane's (`$2`) first limited candidates of each fairness
/// key `$9`, as many as `$10` says for it, through `executions_fair_claim`
/// (`$5` is unused), locked as [`LANE_CANDIDATES`] are.
const FAIR_CANDIDATES: &str = concat!(
    "SELECT c.* FROM unnest($9::text[], $10::bigint[]) AS k(key, n) CROSS JOIN LATERAL (",
    select_stored!(),
    " WHERE lane = $2 AND COALESCE(fairness_key, namespace) = k.key AND $5 > 0 AND ",
    limited_filter!(),
    " ORDER BY priority DESC, ready_at, id LIMIT k.n FOR UPDATE SKIP LOCKED) c"
);

/// The fairness keys of a lane (`$2`) with work due at `$3`: of those it
/// has seen (`fair_keys`, registered as executions are stored) and the
/// namespace's own, each one probe of `executions_fair_claim` (the
/// `LIMIT 1` keeps the planner from a semi-join that reads the lane).
const FAIR_KEYS: &str = "SELECT k.key FROM ( \
       SELECT key FROM fair_keys WHERE namespace = $1 AND lane = $2 UNION SELECT $1::text) k \
     CROSS JOIN LATERAL (SELECT 1 FROM executions WHERE namespace = $1 AND lane = $2 \
       AND COALESCE(fairness_key, namespace) = k.key AND state IN ('ready', 'scheduled') \
       AND ready_at <= $3 LIMIT 1) due \
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

/// The limited claim, or `None` when the namespace has no policies after
/// all (its claims go back to the one statement).
pub(crate) async fn claim_limited(
    backend: &PostgresBackend,
    req: &ClaimRequest,
) -> Result<Option<Vec<Claimed>>, EngineError> {
    let ns = req.namespace.as_str();
    let mut tx = backend.inner.pool.begin().await.db()?;
    let early = backend.now();
    let seen = ClaimState::read(&mut tx, req, early).await?;
    if seen.policies.is_empty() {
        backend.mark_limited(ns, false);
        return Ok(None);
    }
    let seen_set = PolicySet::new(&seen.policies);
    let seen_held = seen.load(&seen_set, &mut ClaimGate::new(&seen_set, early))?;
    let seen_candidates = Candidates::read(&mut tx, req, &seen_set, &seen_held, early).await?;
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
    let reusable = state.policies == seen.policies && held == seen_held;
    let candidates = match seen_candidates.reuse(reusable, now) {
        Some(candidates) => candidates,
        None => Candidates::read(&mut tx, req, &set, &held, now).await?,
    };
    let decided = Decision::make(candidates, &state, &mut gate, req.n)?;
    let (mut keys, mut levels, mut ats) = (Vec::new(), Vec::new(), Vec::new());
    for (key, bucket) in gate.changed_buckets() {
        keys.push(key);
        levels.push(rows::signed(bucket.level));
        ats.push(bucket.at);
    }
    let ids = decided.ids();
    let rows = sqlx::query(CLAIM_PICKED)
        .bind(&ids)
        .bind(now)
        .bind(&req.worker_id)
        .bind(ns)
        .bind(keys)
        .bind(levels)
        .bind(ats)
        .bind(decided.credit_lanes())
        .bind(decided.credits_json()?)
        .fetch_all(&mut *tx)
        .await
        .db()?;
    tx.commit().await.db()?;
    backend.inner.passed_over.add(&decided.passed);
    answer(backend, &ids, &rows).map(Some)
}

/// The claimed rows as claims, in the order they were picked, which a
/// fair-share lane decides rather than the lane order.
fn answer(
    backend: &PostgresBackend,
    ids: &[uuid::Uuid],
    rows: &[PgRow],
) -> Result<Vec<Claimed>, EngineError> {
    let order: HashMap<uuid::Uuid, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut claimed = read_all(rows)?;
    claimed.sort_by_key(|e| order.get(e.id.as_uuid()).copied());
    backend.note_churn(claimed.len());
    claimed.iter().map(lease::claimed).collect()
}

/// What a gate picked from a claim's candidates, and the credits of its
/// fair-share lanes after.
struct Decision {
    picked: Vec<Execution>,
    credits: Vec<(String, Credits)>,
    passed: Vec<Held>,
}

impl Decision {
    /// Up to `n` of `candidates` as `gate` admits them, the fair-share
    /// lanes starting from the credits `state` read.
    fn make(
        candidates: Candidates,
        state: &ClaimState,
        gate: &mut ClaimGate<'_>,
        n: u32,
    ) -> Result<Self, EngineError> {
        let mut fair_lanes = Vec::new();
        let mut lanes = Vec::with_capacity(candidates.lanes.len());
        for (lane, source) in candidates.lanes {
            lanes.push(match source {
                LaneCandidates::Plain(execs) => LaneSource::plain(execs.into_iter()),
                LaneCandidates::Fair(by_key) => {
                    let credits = state.credits(&lane)?;
                    fair_lanes.push((lanes.len(), lane));
                    LaneSource::Fair {
                        keys: by_key
                            .into_iter()
                            .map(|(k, weight, e)| (k, weight, e.into_iter().peekable()))
                            .collect(),
                        credits,
                    }
                }
            });
        }
        let mut passed = Vec::new();
        let picked = select(&mut lanes, gate, n as usize, |e| e, |_, _| {}, &mut passed);
        let credits = fair_lanes
            .into_iter()
            .filter_map(|(i, lane)| lanes[i].credits().map(|c| (lane, c.clone())))
            .collect();
        Ok(Self {
            picked,
            credits,
            passed,
        })
    }

    fn ids(&self) -> Vec<uuid::Uuid> {
        self.picked.iter().map(|e| *e.id.as_uuid()).collect()
    }

    fn credit_lanes(&self) -> Vec<String> {
        self.credits.iter().map(|(lane, _)| lane.clone()).collect()
    }

    fn credits_json(&self) -> Result<Vec<String>, EngineError> {
        self.credits.iter().map(|(_, c)| to_json(c)).collect()
    }
}

/// A claim's candidates, per lane in the request's order, and whether every
/// read filled its limit.
struct Candidates {
    lanes: Vec<(String, LaneCandidates)>,
    whole: bool,
}

/// One lane's candidates: in claim order, or on a fair-share lane per
/// fairness key (with its weight) in claim order.
enum LaneCandidates {
    Plain(Vec<Execution>),
    Fair(Vec<(String, u32, Vec<Execution>)>),
}

impl Candidates {
    /// Reads and locks the candidates of each lane of `req` at `now` that
    /// `held` leaves.
    async fn read(
        tx: &mut Transaction<'_, Postgres>,
        req: &ClaimRequest,
        set: &PolicySet,
        held: &HeldKeys,
        now: Millis,
    ) -> Result<Self, EngineError> {
        let want = i64::from(req.n) + SLACK;
        let mut lanes = Vec::with_capacity(req.lanes.len());
        let mut whole = true;
        for lane in &req.lanes {
            let source = match set.fair_share(lane) {
                None => {
                    let rows = bind_held(sqlx::query(LANE_CANDIDATES), held, req, lane, now, want)
                        .fetch_all(&mut **tx)
                        .await
                        .db()?;
                    whole &= rows.len() as i64 >= want;
                    LaneCandidates::Plain(read_all(&rows)?)
                }
                Some(fair) => {
                    let keys: Vec<String> = sqlx::query_scalar(FAIR_KEYS)
                        .bind(&req.namespace)
                        .bind(lane)
                        .bind(now)
                        .fetch_all(&mut **tx)
                        .await
                        .db()?;
                    let total: u32 = keys.iter().map(|k| fair.weight(k)).sum();
                    let limits: Vec<i64> = keys
                        .iter()
                        .map(|k| fair_fetch(req.n as usize, fair.weight(k), total) as i64)
                        .collect();
                    let rows = bind_held(sqlx::query(FAIR_CANDIDATES), held, req, lane, now, want)
                        .bind(&keys)
                        .bind(&limits)
                        .fetch_all(&mut **tx)
                        .await
                        .db()?;
                    let mut by_key: BTreeMap<String, Vec<Execution>> = BTreeMap::new();
                    let execs = read_all(&rows)?;
                    for (key, limit) in keys.iter().zip(&limits) {
                        let read = execs.iter().filter(|e| e.fairness() == key).count();
                        whole &= read as i64 >= *limit;
                    }
                    for exec in execs {
                        by_key
                            .entry(exec.fairness().to_owned())
                            .or_default()
                            .push(exec);
                    }
                    LaneCandidates::Fair(
                        by_key
                            .into_iter()
                            .map(|(k, e)| {
                                let weight = fair.weight(&k);
                                (k, weight, e)
                            })
                            .collect(),
                    )
                }
            };
            lanes.push((lane.clone(), source));
        }
        Ok(Self { lanes, whole })
    }

    /// These candidates for a decision at `now` when they may serve
    /// (`reusable`) and every read filled its limit, less those no longer
    /// claimable then (a deadline passed while the claim waited for the
    /// lock); `None` when they must be read again.
    fn reuse(self, reusable: bool, now: Millis) -> Option<Self> {
        if !reusable || !self.whole {
            return None;
        }
        let claimable = |execs: &mut Vec<Execution>| execs.retain(|e| e.is_claimable(now));
        let mut lanes = self.lanes;
        for (_, source) in &mut lanes {
            match source {
                LaneCandidates::Plain(execs) => claimable(execs),
                LaneCandidates::Fair(keys) => {
                    for (_, _, execs) in keys.iter_mut() {
                        claimable(execs);
                    }
                }
            }
        }
        Some(Self { lanes, whole: true })
    }
}

/// Binds `$1` to `$8` of a candidates query ([`limited_filter!`]).
fn bind_held<'q>(
    query: Query<'q, Postgres, PgArguments>,
    held: &'q HeldKeys,
    req: &'q ClaimRequest,
    lane: &'q str,
    now: Millis,
    want: i64,
) -> Query<'q, Postgres, PgArguments> {
    query
        .bind(&req.namespace)
        .bind(lane)
        .bind(now)
        .bind(&req.capabilities)
        .bind(want)
        .bind(&held.full)
        .bind(&held.empty)
        .bind(&held.broke)
}

/// What [`CLAIM_STATE`] read.
struct ClaimState {
    policies: Vec<Policy>,
    running: BTreeMap<String, u32>,
    buckets: Vec<(String, Bucket)>,
    usage: HashMap<String, String>,
    credits: Vec<(String, String)>,
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
        let running: Vec<(String, i64)> = json(row.try_get(1).db()?)?;
        let buckets: Vec<(String, i64, i64)> = json(row.try_get(2).db()?)?;
        let usage: Vec<(String, String)> = json(row.try_get(3).db()?)?;
        Ok(Self {
            policies,
            running: running
                .into_iter()
                .map(|(key, n)| (key, u32::try_from(n).unwrap_or(u32::MAX)))
                .collect(),
            buckets: buckets
                .into_iter()
                .map(|(key, level, at)| {
                    let level = u64::try_from(level).unwrap_or(0);
                    (key, Bucket { level, at })
                })
                .collect(),
            usage: usage.into_iter().collect(),
            credits: json(row.try_get(4).db()?)?,
        })
    }

    /// Loads the running counts, buckets and usage into `gate`, and says
    /// what is held outright.
    fn load(&self, set: &PolicySet, gate: &mut ClaimGate<'_>) -> Result<HeldKeys, EngineError> {
        for (key, n) in &self.running {
            gate.set_running(key, *n);
        }
        for (key, bucket) in &self.buckets {
            gate.set_bucket(key, Some(*bucket));
        }
        for (name, _) in set.budgets() {
            gate.set_usage(
                name,
                json_or_default::<Usage>(self.usage.get(name).cloned())?,
            );
        }
        Ok(gate.held_keys())
    }

    /// The stored credits of fair-share lane `lane`.
    fn credits(&self, lane: &str) -> Result<Credits, EngineError> {
        json_or_default(
            self.credits
                .iter()
                .find(|(l, _)| l == lane)
                .map(|(_, text)| text.clone()),
        )
    }
}

fn read_all(rows: &[PgRow]) -> Result<Vec<Execution>, EngineError> {
    rows.iter()
        .map(|row| rows::read_stored(row).map(|s| s.exec))
        .collect()
}
