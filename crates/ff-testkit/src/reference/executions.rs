//! `ExecutionStore` for the reference backend: `ff_core` checks the
//! requests and derives `ExecutionOps`/`LeaseOps` from it.

use std::time::Duration;

use async_trait::async_trait;
use ff_backend_support::claim_wait;
use ff_core::{
    ClaimRequest, Claimed, EngineError, Execution, ExecutionId, ExecutionStore, Limits, Rule,
    State, SubmitRequest, Submitted, Valid,
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
impl ExecutionStore for ReferenceBackend {
    fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    async fn transition<T: Send + 'static, R: Rule<T>>(
        &self,
        id: ExecutionId,
        mut rule: R,
    ) -> Result<T, EngineError> {
        // The time is read under the lock, so a later step never records an
        // earlier time than one it follows.
        self.with_store(|store, effects| {
            let now = self.now();
            store.update(id, now, effects, |exec| rule(exec, now))
        })
    }

    async fn claim_valid(&self, req: &Valid<ClaimRequest>) -> Result<Vec<Claimed>, EngineError> {
        Ok(self.claim_now(req))
    }

    async fn claim_wait_valid(
        &self,
        req: &Valid<ClaimRequest>,
        timeout: Duration,
    ) -> Result<Vec<Claimed>, EngineError> {
        let claim = || async { Ok(self.claim_now(req)) };
        claim_wait(&self.inner.work, timeout, super::leases::RECHECK, claim).await
    }

    async fn submit_valid(
        &self,
        reqs: Valid<Vec<SubmitRequest>>,
    ) -> Result<Vec<Submitted>, EngineError> {
        let now = self.now();
        Ok(self.with_store(|store, effects| {
            reqs.into_inner()
                .into_iter()
                .map(|req| store.insert(req, now, effects))
                .collect()
        }))
    }
}
