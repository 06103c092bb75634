//! `LeaseOps`: claims in lane order with `FOR UPDATE SKIP LOCKED`, and the
//! fenced worker operations.

use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use ff_core::lease::{self, LeaseHandle};
use ff_core::{
    ClaimRequest, Claimed, CompleteResponse, EngineError, FailResponse, Failure, JsonText,
    LeaseOps, Renewed,
};

use crate::rows::{self, select_stored, Stored};
use crate::store::{self, Change};
use crate::{PgResult, PostgresBackend};

/// A waiting claim looks again at least this often, so work that became due
/// by the clock alone (a run_at or backoff passing) is found without a
/// notification. Notifications wake it sooner.
const RECHECK: Duration = Duration::from_secs(1);

/// Claimable executions of one lane in claim order: priority (higher
/// first), then ready_at, then id, served by the `executions_claim` partial
/// index (the state test must match its WHERE). Rows another claimer holds
/// are skipped, not waited for.
const CANDIDATES: &str = concat!(
    select_stored!(),
    " WHERE namespace = $1 AND lane = $2 AND state IN ('ready', 'scheduled') \
     AND ready_at <= $3 AND (deadline IS NULL OR deadline > $3) AND capabilities <@ $4 \
     ORDER BY priority DESC, ready_at, id LIMIT $5 FOR UPDATE SKIP LOCKED"
);

#[async_trait]
impl LeaseOps for PostgresBackend {
    async fn claim(&self, req: &ClaimRequest) -> Result<Vec<Claimed>, EngineError> {
        let mut req = req.clone();
        req.validate(&self.inner.limits)?;
        self.claim_valid(&req).await
    }

    async fn claim_wait(
        &self,
        req: &ClaimRequest,
        timeout: Duration,
    ) -> Result<Vec<Claimed>, EngineError> {
        let mut req = req.clone();
        req.validate(&self.inner.limits)?;
        let deadline = Instant::now() + timeout;
        // Subscribed before the first claim: a commit landing between an
        // empty claim and the wait still wakes us.
        let mut signal = self.inner.work.subscribe();
        loop {
            signal.borrow_and_update();
            let claimed = self.claim_valid(&req).await?;
            let now = Instant::now();
            if !claimed.is_empty() || now >= deadline {
                return Ok(claimed);
            }
            let wait = (deadline - now).min(RECHECK);
            if let Ok(Err(_)) = tokio::time::timeout(wait, signal.changed()).await {
                return Ok(claimed);
            }
        }
    }

    async fn renew(&self, handle: &LeaseHandle) -> Result<Renewed, EngineError> {
        let handle = *handle;
        self.transition(handle.execution_id, move |exec, now| {
            lease::renew(exec, &handle, now)
        })
        .await?
    }

    async fn release(&self, handle: &LeaseHandle) -> Result<(), EngineError> {
        let handle = *handle;
        self.transition(handle.execution_id, move |exec, now| {
            lease::release(exec, &handle, now)
        })
        .await?
    }

    async fn complete(
        &self,
        handle: &LeaseHandle,
        result: JsonText,
    ) -> Result<CompleteResponse, EngineError> {
        let limits = &self.inner.limits;
        limits.check_size("result", result.len(), limits.max_result_bytes)?;
        result.validate("result")?;
        let handle = *handle;
        self.transition(handle.execution_id, move |exec, now| {
            lease::complete(exec, &handle, result.clone(), now)
        })
        .await?
    }

    async fn fail(
        &self,
        handle: &LeaseHandle,
        failure: Failure,
    ) -> Result<FailResponse, EngineError> {
        self.inner.limits.check_error(&failure.error)?;
        let handle = *handle;
        self.transition(handle.execution_id, move |exec, now| {
            lease::fail(exec, &handle, failure.clone(), now)
        })
        .await?
    }
}

impl PostgresBackend {
    /// Claims up to `req.n`: locks each lane's first candidates, merges them
    /// by claim order, applies `ff_core`'s claim to the picks and writes them
    /// in one statement, all in one transaction. Candidates not picked are
    /// left as they were.
    async fn claim_valid(&self, req: &ClaimRequest) -> Result<Vec<Claimed>, EngineError> {
        let mut tx = self.inner.pool.begin().await.db()?;
        let now = self.now();
        let want = i64::from(req.n);
        let mut candidates: Vec<Stored> = Vec::new();
        for lane in &req.lanes {
            let rows = sqlx::query(CANDIDATES)
                .bind(&req.namespace)
                .bind(lane)
                .bind(now)
                .bind(&req.capabilities)
                .bind(want)
                .fetch_all(&mut *tx)
                .await
                .db()?;
            for row in &rows {
                candidates.push(rows::read_stored(row)?);
            }
        }
        candidates.sort_by_key(|s| s.exec.order_key());
        let mut claimed = Vec::new();
        let mut changes = Vec::new();
        for stored in candidates {
            if changes.len() == req.n as usize {
                break;
            }
            if !(stored.exec.is_claimable(now)
                && stored.exec.capabilities_met_by(&req.capabilities))
            {
                continue;
            }
            let mut exec = stored.exec.clone();
            claimed.push(lease::claim(&mut exec, &req.worker_id, now));
            changes.extend(Change::between(&stored, exec));
        }
        let saved = store::save_batch(&mut *tx, &changes, now).await?;
        if !saved.all(&changes) {
            return Err(EngineError::backend(
                "a locked execution changed during a claim",
            ));
        }
        tx.commit().await.db()?;
        self.announce(saved);
        Ok(claimed)
    }
}
