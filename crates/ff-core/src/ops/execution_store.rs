//! `ExecutionStore`: what a backend gives the single-execution rules. The
//! engine-facing [`LeaseOps`] and [`ExecutionOps`] follow from it here, once
//! for every backend: each request is checked against the backend's limits
//! before the backend sees it (a [`Valid`] value is the proof), and each
//! fenced worker operation is one `ff_core` rule run through
//! [`ExecutionStore::transition`].

use std::ops::Deref;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::Millis;
use crate::error::EngineError;
use crate::execution::{validate_batch, Execution, SubmitRequest, Submitted};
use crate::ids::ExecutionId;
use crate::json::JsonText;
use crate::lease::{
    self, ClaimRequest, Claimed, CompleteResponse, FailResponse, Failure, LeaseHandle, Renewed,
};
use crate::lifecycle::{self, CancelResponse};
use crate::limits::Limits;

use super::{ExecutionOps, LeaseOps};

/// A request that passed its checks against the limits. Only this module
/// makes one, so a backend method taking `Valid<_>` cannot be reached with
/// unchecked input.
#[derive(Debug, Clone)]
pub struct Valid<T>(T);

impl<T> Valid<T> {
    /// The checked request.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Valid<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// A rule [`ExecutionStore::transition`] runs on one execution at `now`.
pub trait Rule<T>: FnMut(&mut Execution, Millis) -> T + Send + 'static {}

impl<T, F> Rule<T> for F where F: FnMut(&mut Execution, Millis) -> T + Send + 'static {}

/// The storage side of the execution operations. Implementing it gives a
/// backend [`LeaseOps`] and [`ExecutionOps`].
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    /// The limits requests are checked against.
    fn limits(&self) -> &Limits;

    /// Loads execution `id` (unknown → `NotFound`), applies `rule` with the
    /// store's `now`, and persists whatever the rule changed — also when it
    /// answers with an error, as after a lease expiry the rule applied
    /// itself. A store may run the rule again on a fresher copy when a
    /// concurrent writer got there first; only the last run's answer counts.
    async fn transition<T: Send + 'static, R: Rule<T>>(
        &self,
        id: ExecutionId,
        rule: R,
    ) -> Result<T, EngineError>;

    /// Claims up to `req.n` executions in claim order, through
    /// [`lease::claim`].
    async fn claim_valid(&self, req: &Valid<ClaimRequest>) -> Result<Vec<Claimed>, EngineError>;

    /// [`ExecutionStore::claim_valid`], waiting up to `timeout` for work
    /// when there is none.
    async fn claim_wait_valid(
        &self,
        req: &Valid<ClaimRequest>,
        timeout: Duration,
    ) -> Result<Vec<Claimed>, EngineError>;

    /// Stores the requests in order, all or none (a partitioned store: all
    /// or none per partition). A request whose idempotency key is taken in
    /// its namespace, also by an earlier request of the same batch, answers
    /// with that execution instead.
    async fn submit_valid(
        &self,
        reqs: Valid<Vec<SubmitRequest>>,
    ) -> Result<Vec<Submitted>, EngineError>;
}

#[async_trait]
impl<S: ExecutionStore> LeaseOps for S {
    async fn claim(&self, req: &ClaimRequest) -> Result<Vec<Claimed>, EngineError> {
        self.claim_valid(&valid_claim(req, self.limits())?).await
    }

    async fn claim_wait(
        &self,
        req: &ClaimRequest,
        timeout: Duration,
    ) -> Result<Vec<Claimed>, EngineError> {
        let req = valid_claim(req, self.limits())?;
        self.claim_wait_valid(&req, timeout).await
    }

    async fn renew(&self, handle: &LeaseHandle) -> Result<Renewed, EngineError> {
        let handle = handle.clone();
        self.transition(handle.execution_id, move |exec, now| {
            lease::renew(exec, &handle, now)
        })
        .await?
    }

    async fn release(&self, handle: &LeaseHandle) -> Result<(), EngineError> {
        let handle = handle.clone();
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
        self.limits().check_result(&result)?;
        let handle = handle.clone();
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
        self.limits().check_error(&failure.error)?;
        let handle = handle.clone();
        self.transition(handle.execution_id, move |exec, now| {
            lease::fail(exec, &handle, failure.clone(), now)
        })
        .await?
    }
}

#[async_trait]
impl<S: ExecutionStore> ExecutionOps for S {
    async fn submit(&self, req: SubmitRequest) -> Result<Submitted, EngineError> {
        req.validate(self.limits())?;
        self.submit_valid(Valid(vec![req]))
            .await?
            .pop()
            .ok_or_else(|| EngineError::backend("submit stored nothing"))
    }

    async fn submit_batch(&self, reqs: Vec<SubmitRequest>) -> Result<Vec<Submitted>, EngineError> {
        // The whole batch is checked before any of it is stored.
        validate_batch(&reqs, self.limits())?;
        self.submit_valid(Valid(reqs)).await
    }

    async fn cancel(&self, id: ExecutionId) -> Result<CancelResponse, EngineError> {
        self.transition(id, lifecycle::cancel).await
    }

    async fn requeue(&self, id: ExecutionId) -> Result<(), EngineError> {
        self.transition(id, lifecycle::requeue).await?
    }
}

/// The claim request checked, its capabilities and lanes normalized.
fn valid_claim(req: &ClaimRequest, limits: &Limits) -> Result<Valid<ClaimRequest>, EngineError> {
    let mut req = req.clone();
    req.validate(limits)?;
    Ok(Valid(req))
}
