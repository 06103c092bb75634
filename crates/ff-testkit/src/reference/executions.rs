//! `ExecutionOps` for the reference backend.

use async_trait::async_trait;
use ff_core::execution::validate_batch;
use ff_core::{
    lifecycle, CancelResponse, EngineError, Execution, ExecutionId, ExecutionOps, State,
    SubmitRequest, Submitted,
};

use super::{Effects, ReferenceBackend, Store};

impl Store {
    fn insert(
        &mut self,
        req: SubmitRequest,
        now: ff_core::Millis,
        effects: &mut Effects,
    ) -> Submitted {
        let key = req
            .idempotency_key
            .clone()
            .map(|k| (req.resolved_namespace().to_owned(), k));
        let holder = key.as_ref().and_then(|k| self.idempotency.get(k));
        if let Some(existing) = holder.and_then(|id| self.executions.get(id)) {
            return Submitted::repeat_of(existing, &req);
        }
        let exec = Execution::new(ExecutionId::new(), req, now);
        let id = exec.id;
        effects.work_ready |= exec.state == State::Ready;
        if let Some(key) = key {
            self.idempotency.insert(key, id);
        }
        self.executions.insert(id, exec);
        Submitted::created(id)
    }
}

#[async_trait]
impl ExecutionOps for ReferenceBackend {
    async fn submit(&self, req: SubmitRequest) -> Result<Submitted, EngineError> {
        req.validate(&self.inner.limits)?;
        let now = self.now();
        Ok(self.with_store(|store, effects| store.insert(req, now, effects)))
    }

    async fn submit_batch(&self, reqs: Vec<SubmitRequest>) -> Result<Vec<Submitted>, EngineError> {
        validate_batch(&reqs, &self.inner.limits)?;
        let now = self.now();
        Ok(self.with_store(|store, effects| {
            reqs.into_iter()
                .map(|req| store.insert(req, now, effects))
                .collect()
        }))
    }

    async fn cancel(&self, id: ExecutionId) -> Result<CancelResponse, EngineError> {
        let now = self.now();
        self.with_store(|store, effects| {
            store.update(id, now, effects, |exec| lifecycle::cancel(exec, now))
        })
    }

    async fn requeue(&self, id: ExecutionId) -> Result<(), EngineError> {
        let now = self.now();
        self.with_store(|store, effects| {
            store.update(id, now, effects, |exec| lifecycle::requeue(exec, now))
        })?
    }
}
