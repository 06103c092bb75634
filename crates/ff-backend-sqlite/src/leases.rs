//! Claims in lane order: the candidates of every lane merged by claim
//! order, each pick moved to running by `ff_core`'s claim rule.

use std::time::Duration;

use rusqlite::{params, Rows};

use ff_core::flow_control::{PassedOver, PolicySet};
use ff_core::lease;
use ff_core::{ClaimRequest, Claimed, EngineError, Execution, ExecutionStore, LeaseToken, Valid};

use crate::command::WriteCtx;
use crate::flow_control;
use crate::rows::{self, select_stored, Stamp};
use crate::{SqlResult, SqliteBackend};

/// A waiting claim looks again at least this often, so work that became due
/// by the clock alone (a run_at or backoff passing) is found without a signal.
const RECHECK: Duration = Duration::from_secs(1);

/// Claimable executions of one lane in claim order: priority (higher first),
/// then ready_at, then id. Served by the `executions_claim` partial index
/// (the state test must match its WHERE); rows are read lazily, so a scan
/// stops as soon as the claim has enough.
pub(crate) const CANDIDATES: &str = concat!(
    select_stored!(),
    " WHERE namespace = ?1 AND lane = ?2 AND state IN ('ready', 'scheduled') \
     AND ready_at <= ?3 AND (deadline IS NULL OR deadline > ?3) \
     ORDER BY priority DESC, ready_at, id"
);

/// [`claim`], waiting up to `timeout` for work when there is none.
pub(crate) async fn claim_wait(
    backend: &SqliteBackend,
    req: &Valid<ClaimRequest>,
    timeout: Duration,
) -> Result<Vec<Claimed>, EngineError> {
    ff_backend_support::claim_wait(&backend.inner.work, timeout, RECHECK, || {
        backend.claim_valid(req)
    })
    .await
}

/// Claims up to `req.n` executions: merges the lanes' candidate streams by
/// claim order, passes over executions needing capabilities the worker lacks
/// or held by the namespace's flow-control policies (neither blocks a
/// lane), then applies `ff_core`'s claim to each pick.
pub(crate) fn claim(
    ctx: &mut WriteCtx<'_>,
    req: &ClaimRequest,
    tally: &PassedOver,
) -> Result<Vec<Claimed>, EngineError> {
    let policies = flow_control::load_policies(ctx.conn(), &req.namespace)?;
    let picked = if policies.is_empty() {
        pick_candidates(ctx, req)?
    } else {
        flow_control::pick_limited(ctx, req, &PolicySet::new(&policies), tally)?
    };
    let mut claimed = Vec::with_capacity(picked.len());
    for (mut exec, before) in picked {
        claimed.push(lease::claim(
            &mut exec,
            &req.worker_id,
            LeaseToken::random(),
            ctx.now,
        ));
        ctx.save(exec, before)?;
    }
    Ok(claimed)
}

fn pick_candidates(
    ctx: &WriteCtx<'_>,
    req: &ClaimRequest,
) -> Result<Vec<(Execution, Stamp)>, EngineError> {
    let conn = ctx.conn();
    let now = ctx.now;
    let want = req.n as usize;
    // One cursor per lane, open together. Each lane's statement text differs
    // (a trailing comment) so every one of them stays in the statement cache.
    let mut stmts = Vec::with_capacity(req.lanes.len());
    for i in 0..req.lanes.len() {
        let sql = if i == 0 {
            CANDIDATES.to_owned()
        } else {
            format!("{CANDIDATES} -- lane {i}")
        };
        stmts.push(conn.prepare_cached(&sql).db()?);
    }
    let mut cursors = Vec::with_capacity(stmts.len());
    for (stmt, lane) in stmts.iter_mut().zip(&req.lanes) {
        cursors.push(stmt.query(params![req.namespace, lane, now]).db()?);
    }
    let mut heads = Vec::with_capacity(cursors.len());
    for cursor in &mut cursors {
        heads.push(next_row(cursor)?);
    }
    let mut picked = Vec::with_capacity(want);
    while picked.len() < want {
        let Some(lane) = heads
            .iter()
            .enumerate()
            .filter_map(|(i, head)| head.as_ref().map(|(e, _)| (e.order_key(), i)))
            .min()
            .map(|(_, i)| i)
        else {
            break;
        };
        let next = next_row(&mut cursors[lane])?;
        let Some((exec, stamp)) = std::mem::replace(&mut heads[lane], next) else {
            break;
        };
        if exec.is_claimable(now) && exec.capabilities_met_by(&req.capabilities) {
            picked.push((exec, stamp));
        }
    }
    Ok(picked)
}

fn next_row(rows: &mut Rows<'_>) -> Result<Option<(Execution, Stamp)>, EngineError> {
    rows.next().db()?.map(rows::read_stored).transpose()
}
