//! `ExecutionStore`: the storage side of the execution and lease operations
//! (`ff_core` checks the requests and derives `ExecutionOps`/`LeaseOps`).

use std::time::Duration;

use async_trait::async_trait;

use ff_core::{
    ClaimRequest, Claimed, EngineError, Execution, ExecutionId, ExecutionStore, Limits, Rule,
    SubmitRequest, Submitted, Valid,
};

use crate::command::WriteCtx;
use crate::{leases, rows, transition, SqliteBackend};

#[async_trait]
impl ExecutionStore for SqliteBackend {
    fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    async fn transition<T: Send + 'static, R: Rule<T>>(
        &self,
        id: ExecutionId,
        rule: R,
    ) -> Result<T, EngineError> {
        transition::transition(self, id, rule).await
    }

    async fn claim_valid(&self, req: &Valid<ClaimRequest>) -> Result<Vec<Claimed>, EngineError> {
        let req = req.clone();
        let tally = self.inner.passed_over.clone();
        self.inner
            .writer
            .write(move |ctx| leases::claim(ctx, &req, &tally))
            .await
    }

    async fn claim_wait_valid(
        &self,
        req: &Valid<ClaimRequest>,
        timeout: Duration,
    ) -> Result<Vec<Claimed>, EngineError> {
        leases::claim_wait(self, req, timeout).await
    }

    /// One write command for the whole batch: all of it commits or none.
    async fn submit_valid(
        &self,
        reqs: Valid<Vec<SubmitRequest>>,
    ) -> Result<Vec<Submitted>, EngineError> {
        self.inner
            .writer
            .write(move |ctx| {
                reqs.into_inner()
                    .into_iter()
                    .map(|req| submit_one(ctx, req))
                    .collect()
            })
            .await
    }
}

/// Stores a validated request, or answers with the execution that already
/// holds its idempotency key in the namespace (earlier items of the same
/// batch included: they are already inserted in this transaction).
fn submit_one(ctx: &mut WriteCtx<'_>, req: SubmitRequest) -> Result<Submitted, EngineError> {
    if let Some(key) = &req.idempotency_key {
        if let Some(id) = rows::find_by_idempotency_key(ctx.conn(), req.resolved_namespace(), key)?
        {
            // The spec columns never change, so the stored row answers even
            // when a newer copy of its state is cached.
            let (existing, _) = rows::load_stored(ctx.conn(), id)?
                .ok_or_else(|| EngineError::execution_not_found(id))?;
            return Ok(Submitted::repeat_of(&existing, &req));
        }
    }
    let exec = Execution::new(ExecutionId::new(), req, ctx.now);
    ctx.insert(&exec)?;
    Ok(Submitted::created(exec.id))
}
