//! `LeaseOps` for the reference backend.

use std::time::Duration;

use async_trait::async_trait;
use ff_backend_support::claim_wait;
use ff_core::{
    lease, ClaimRequest, Claimed, CompleteResponse, EngineError, FailResponse, Failure, JsonText,
    LeaseHandle, LeaseOps, LeaseToken, Renewed,
};

use super::ReferenceBackend;

/// Longest single wait before claiming again: a safety net for work that
/// becomes due by time alone, never a tight poll.
const RECHECK: Duration = Duration::from_secs(1);

#[async_trait]
impl LeaseOps for ReferenceBackend {
    async fn claim(&self, req: &ClaimRequest) -> Result<Vec<Claimed>, EngineError> {
        let mut req = req.clone();
        req.validate(&self.inner.limits)?;
        let now = self.now();
        Ok(self.with_store(|store, _| {
            let mut candidates: Vec<_> = store
                .executions
                .values()
                .filter(|e| {
                    e.namespace == req.namespace
                        && req.lanes.contains(&e.lane)
                        && e.is_claimable(now)
                        && e.capabilities_met_by(&req.capabilities)
                })
                .map(|e| (e.order_key(), e.id))
                .collect();
            candidates.sort();
            candidates
                .into_iter()
                .take(req.n as usize)
                .filter_map(|(_, id)| {
                    let exec = store.executions.get_mut(&id)?;
                    Some(lease::claim(
                        exec,
                        &req.worker_id,
                        LeaseToken::random(),
                        now,
                    ))
                })
                .collect()
        }))
    }

    async fn claim_wait(
        &self,
        req: &ClaimRequest,
        timeout: Duration,
    ) -> Result<Vec<Claimed>, EngineError> {
        claim_wait(&self.inner.work, timeout, RECHECK, || self.claim(req)).await
    }

    async fn renew(&self, handle: &LeaseHandle) -> Result<Renewed, EngineError> {
        let now = self.now();
        self.with_store(|store, effects| {
            store.update(handle.execution_id, now, effects, |exec| {
                lease::renew(exec, handle, now)
            })
        })?
    }

    async fn release(&self, handle: &LeaseHandle) -> Result<(), EngineError> {
        let now = self.now();
        self.with_store(|store, effects| {
            store.update(handle.execution_id, now, effects, |exec| {
                lease::release(exec, handle, now)
            })
        })?
    }

    async fn complete(
        &self,
        handle: &LeaseHandle,
        result: JsonText,
    ) -> Result<CompleteResponse, EngineError> {
        let limits = &self.inner.limits;
        limits.check_size("result", result.len(), limits.max_result_bytes)?;
        result.validate("result")?;
        let now = self.now();
        self.with_store(|store, effects| {
            store.update(handle.execution_id, now, effects, |exec| {
                lease::complete(exec, handle, result, now)
            })
        })?
    }

    async fn fail(
        &self,
        handle: &LeaseHandle,
        failure: Failure,
    ) -> Result<FailResponse, EngineError> {
        self.inner.limits.check_error(&failure.error)?;
        let now = self.now();
        self.with_store(|store, effects| {
            store.update(handle.execution_id, now, effects, |exec| {
                lease::fail(exec, handle, failure, now)
            })
        })?
    }
}
