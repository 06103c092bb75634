//! Claims in lane order with `FOR UPDATE SKIP LOCKED`, one statement per
//! claim, moving the picks to running as `ff_core`'s claim rule does.

use std::time::Duration;

use ff_core::lease;
use ff_core::{ClaimRequest, Claimed, EngineError, Execution};

use crate::claim_limited;
use crate::flow_control;
use crate::rows;
use crate::{PgResult, PostgresBackend};

/// A waiting claim looks again at least this often, so work that became due
/// by the clock alone (a run_at or backoff passing) is found without a
/// notification. Notifications wake it sooner.
pub(crate) const RECHECK: Duration = Duration::from_secs(1);

/// The claim, one statement: lock up to `$5` claimable executions in claim
/// order (priority, higher first, then ready_at, then id), skipping rows
/// another claimer holds, and move them to running as `ff_core::lease::claim`
/// does: a new attempt unless the last was released, a new lease epoch, the
/// lease and attempt deadlines from `$now`, the worker `$worker` and a new
/// attempt record, and a new lease token (the 122 random bits of a
/// version-4 UUID from the server's strong generator, as
/// `ff_core::LeaseToken::random` draws them). The differential test holds
/// this to the Rust rule.
/// `$picked` selects the claimed ids as `picked_id`; `$with`, other
/// common table expressions written in the same statement.
macro_rules! claim_sql {
    ($picked:expr) => {
        claim_sql!("", $picked, "$3", "$6")
    };
    ($with:expr, $picked:expr, $now:literal, $worker:literal) => {
        concat!(
            "WITH ",
            $with,
            "picked AS (",
            $picked,
            ") UPDATE executions e SET \
               attempt = CASE WHEN e.reuse_attempt THEN e.attempt ELSE e.attempt + 1 END, \
               reuse_attempt = false, \
               lease_epoch = e.lease_epoch + 1, \
               lease_token = replace(gen_random_uuid()::text, '-', ''), \
               state = 'running', \
               lease_until = ",
            $now,
            " + e.lease_ms, \
               attempt_deadline = ",
            $now,
            " + e.attempt_timeout_ms, \
               worker_id = ",
            $worker,
            ", \
               updated_at = ",
            $now,
            ", \
               attempts = (e.attempts::jsonb || jsonb_build_array(jsonb_build_object( \
                 'attempt', CASE WHEN e.reuse_attempt THEN e.attempt ELSE e.attempt + 1 END, \
                 'lease_epoch', e.lease_epoch + 1, 'worker_id', ",
            $worker,
            "::text, \
                 'started_at', ",
            $now,
            "::bigint, \
                 'ended_at', NULL, 'end', NULL, 'error', NULL)))::text, \
               version = e.version + 1 \
             FROM picked WHERE e.id = picked.picked_id RETURNING ",
            crate::rows::columns!()
        )
    };
}
pub(crate) use claim_sql;

/// Claimable executions of one lane (`$lane`), first `$5` in claim order,
/// locked; the `executions_claim` index serves the order. None in a
/// namespace with flow-control policies: its claims take the limited path.
macro_rules! lane_candidates {
    ($lane:literal) => {
        concat!(
            "SELECT id, priority, ready_at FROM executions WHERE namespace = $1 AND lane = ",
            $lane,
            " AND state IN ('ready', 'scheduled') AND ready_at <= $3 \
               AND (deadline IS NULL OR deadline > $3) AND capabilities <@ $4 \
               AND NOT EXISTS (SELECT 1 FROM flow_policies WHERE namespace = $1) \
               ORDER BY priority DESC, ready_at, id LIMIT $5 FOR UPDATE SKIP LOCKED"
        )
    };
}

/// One lane (`$2`): its first candidates.
const CLAIM_ONE_LANE: &str = claim_sql!(concat!(
    "SELECT id AS picked_id FROM (",
    lane_candidates!("$2"),
    ") c"
));

/// Several lanes (`$2` an array): each lane's first candidates through its
/// own index scan, merged in claim order. Candidates locked but not picked
/// are released unchanged when the statement ends.
const CLAIM_LANES: &str = claim_sql!(concat!(
    "SELECT c.id AS picked_id FROM unnest($2::text[]) AS l(lane) CROSS JOIN LATERAL (",
    lane_candidates!("l.lane"),
    ") c ORDER BY c.priority DESC, c.ready_at, c.id LIMIT $5"
));

/// Claims up to `req.n`, answered in claim order: in one statement, or
/// through [`claim_limited::claim_limited`] in a namespace with policies.
pub(crate) async fn claim(
    backend: &PostgresBackend,
    req: &ClaimRequest,
) -> Result<Vec<Claimed>, EngineError> {
    if backend.is_limited(&req.namespace) {
        if let Some(claimed) = claim_limited::claim_limited(backend, req).await? {
            return Ok(claimed);
        }
    }
    let claimed = claim_plain(backend, req).await?;
    let left = req.n.saturating_sub(claimed.len() as u32);
    if left > 0 && flow_control::has_policies(backend, &req.namespace).await? {
        let mut rest = req.clone();
        rest.n = left;
        if let Some(more) = claim_limited::claim_limited(backend, &rest).await? {
            return Ok(claimed.into_iter().chain(more).collect());
        }
    }
    Ok(claimed)
}

/// The one-statement claim.
async fn claim_plain(
    backend: &PostgresBackend,
    req: &ClaimRequest,
) -> Result<Vec<Claimed>, EngineError> {
    let now = backend.now();
    let query = match req.lanes.as_slice() {
        [lane] => sqlx::query(CLAIM_ONE_LANE).bind(&req.namespace).bind(lane),
        lanes => sqlx::query(CLAIM_LANES).bind(&req.namespace).bind(lanes),
    };
    let rows = query
        .bind(now)
        .bind(&req.capabilities)
        .bind(i64::from(req.n))
        .bind(&req.worker_id)
        .fetch_all(&backend.inner.pool)
        .await
        .db()?;
    let mut claimed = rows
        .iter()
        .map(|row| rows::read_stored(row).map(|s| s.exec))
        .collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(Execution::order_key);
    backend.note_churn(claimed.len());
    claimed.iter().map(lease::claimed).collect()
}
