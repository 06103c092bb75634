//! `ExecutionOps`: submit, cancel, requeue.

use async_trait::async_trait;

use ff_core::execution::validate_batch;
use ff_core::{
    lifecycle, CancelResponse, EngineError, Execution, ExecutionId, ExecutionOps, SubmitRequest,
    Submitted,
};

use crate::command::WriteCtx;
use crate::rows;
use crate::SqliteBackend;

#[async_trait]
impl ExecutionOps for SqliteBackend {
    async fn submit(&self, req: SubmitRequest) -> Result<Submitted, EngineError> {
        req.validate(&self.inner.limits)?;
        self.inner
            .writer
            .write(move |ctx| submit_one(ctx, req))
            .await
    }

    async fn submit_batch(&self, reqs: Vec<SubmitRequest>) -> Result<Vec<Submitted>, EngineError> {
        // The whole batch is checked before the writer sees any of it, and
        // runs as one command: all of it commits or none.
        validate_batch(&reqs, &self.inner.limits)?;
        self.inner
            .writer
            .write(move |ctx| reqs.into_iter().map(|req| submit_one(ctx, req)).collect())
            .await
    }

    async fn cancel(&self, id: ExecutionId) -> Result<CancelResponse, EngineError> {
        self.inner
            .writer
            .write(move |ctx| {
                let (mut exec, before) = ctx.load(id)?;
                let response = lifecycle::cancel(&mut exec, ctx.now);
                ctx.save(exec, before)?;
                Ok(response)
            })
            .await
    }

    async fn requeue(&self, id: ExecutionId) -> Result<(), EngineError> {
        self.inner
            .writer
            .write(move |ctx| {
                let (mut exec, before) = ctx.load(id)?;
                lifecycle::requeue(&mut exec, ctx.now)?;
                ctx.save(exec, before)?;
                Ok(())
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
