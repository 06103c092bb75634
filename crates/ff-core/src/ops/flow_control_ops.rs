//! `FlowControlOps`: the policies of a namespace, budget usage, and what
//! holds an execution back at claim. A backend implements the storage
//! side, [`FlowControlStore`]; the operations follow from it here, once,
//! input checked against the limits. The enforcement itself lives in each
//! backend's claim, through [`crate::flow_control::ClaimGate`].

use async_trait::async_trait;

use crate::error::EngineError;
use crate::execution::Execution;
use crate::flow_control::policy::MAX_POLICIES;
use crate::flow_control::{
    Bucket, BudgetStatus, ClaimGate, Held, PassedOver, PassedOverCounts, Policy, PolicySet,
    PolicySpec, Standing, Usage, UsageReport,
};
use crate::ids::ExecutionId;
use crate::lease::fencing::{fence, Fence, WorkerOp};
use crate::lease::LeaseHandle;
use crate::state::State;

use super::{ExecutionOps, SignalStore};

#[async_trait]
pub trait FlowControlOps: Send + Sync {
    /// Creates policy `name` of `namespace` or replaces its spec; the
    /// stored policy with its new version. The next claim applies it.
    async fn put_policy(
        &self,
        namespace: &str,
        name: &str,
        spec: PolicySpec,
    ) -> Result<Policy, EngineError>;

    /// Removes policy `name`; whether it existed.
    async fn delete_policy(&self, namespace: &str, name: &str) -> Result<bool, EngineError>;

    /// The namespace's policies, by name.
    async fn policies(&self, namespace: &str) -> Result<Vec<Policy>, EngineError>;

    /// Adds what the running attempt of `handle` spent to every budget of
    /// its scope (its fairness key; none without one), once per
    /// `report.dedup_key`, and
    /// answers those budgets as they now stand. A budget the report
    /// breaches that says `cancel_pending` cancels the scope's flow
    /// members not yet started.
    async fn report_usage(
        &self,
        handle: &LeaseHandle,
        report: &UsageReport,
    ) -> Result<Vec<BudgetStatus>, EngineError>;

    /// Budget policy `name` as it stands.
    async fn budget(&self, namespace: &str, name: &str) -> Result<BudgetStatus, EngineError>;

    /// What a claim would pass `exec` over for now, if anything.
    async fn held(&self, exec: &Execution) -> Result<Option<Held>, EngineError>;

    /// How many executions with concurrency key `key` run now.
    async fn concurrency_running(&self, namespace: &str, key: &str) -> Result<u32, EngineError>;

    /// How many candidates this backend's claims passed over, by limit.
    fn passed_over(&self) -> PassedOverCounts;
}

/// The storage side of the flow-control operations. Implementing it gives
/// a backend [`FlowControlOps`] (its clock is [`SignalStore::now_ms`]).
#[async_trait]
pub trait FlowControlStore: SignalStore + ExecutionOps {
    /// The namespace's policies, by name.
    async fn load_policies(&self, namespace: &str) -> Result<Vec<Policy>, EngineError>;

    /// Stores `spec` as policy `name`, its version one above the stored
    /// one (1 when new), in one atomic step.
    async fn store_policy(
        &self,
        namespace: &str,
        name: &str,
        spec: &PolicySpec,
    ) -> Result<Policy, EngineError>;

    /// Removes policy `name` and its usage; whether it existed.
    async fn remove_policy(&self, namespace: &str, name: &str) -> Result<bool, EngineError>;

    /// The stored usage of budget `policy`.
    async fn load_usage(&self, namespace: &str, policy: &str) -> Result<Usage, EngineError>;

    /// Replaces the usage of budget `policy` by `update` of it, in one
    /// atomic step; the usage stored.
    async fn update_usage(
        &self,
        namespace: &str,
        policy: &str,
        update: Box<dyn FnMut(Usage) -> Usage + Send>,
    ) -> Result<Usage, EngineError>;

    /// How many executions with concurrency key `key` hold a live lease.
    async fn running_with_key(&self, namespace: &str, key: &str) -> Result<u32, EngineError>;

    /// The stored bucket of rate key `key`, if it was ever used.
    async fn load_bucket(&self, namespace: &str, key: &str) -> Result<Option<Bucket>, EngineError>;

    /// The tally of candidates this backend's claims passed over.
    fn passed_over_tally(&self) -> &PassedOver;

    /// Flow members with fairness key `scope` not yet started (ready,
    /// scheduled or blocked, never claimed).
    async fn pending_flow_members(
        &self,
        namespace: &str,
        scope: &str,
    ) -> Result<Vec<ExecutionId>, EngineError>;
}

#[async_trait]
impl<S: FlowControlStore> FlowControlOps for S {
    async fn put_policy(
        &self,
        namespace: &str,
        name: &str,
        spec: PolicySpec,
    ) -> Result<Policy, EngineError> {
        let limits = self.limits();
        limits.check_name("namespace", namespace)?;
        limits.check_name("name", name)?;
        if name.starts_with('_') {
            return Err(EngineError::invalid(
                "name",
                "names starting with `_` are reserved",
            ));
        }
        spec.validate(limits)?;
        if let PolicySpec::Budget(budget) = &spec {
            if budget.scope == namespace {
                return Err(EngineError::invalid(
                    "scope",
                    "a budget's scope is a fairness key; executions without one spend from no budget",
                ));
            }
        }
        let stored = self.load_policies(namespace).await?;
        if stored.len() >= MAX_POLICIES && !stored.iter().any(|p| p.name == name) {
            return Err(EngineError::invalid(
                "name",
                format!("a namespace holds at most {MAX_POLICIES} policies"),
            ));
        }
        self.store_policy(namespace, name, &spec).await
    }

    async fn delete_policy(&self, namespace: &str, name: &str) -> Result<bool, EngineError> {
        let limits = self.limits();
        limits.check_name("namespace", namespace)?;
        limits.check_name("name", name)?;
        self.remove_policy(namespace, name).await
    }

    async fn policies(&self, namespace: &str) -> Result<Vec<Policy>, EngineError> {
        self.limits().check_name("namespace", namespace)?;
        self.load_policies(namespace).await
    }

    async fn report_usage(
        &self,
        handle: &LeaseHandle,
        report: &UsageReport,
    ) -> Result<Vec<BudgetStatus>, EngineError> {
        report.validate(self.limits())?;
        let fenced = handle.clone();
        let scope = self
            .transition(handle.execution_id, move |exec, now| {
                match fence(exec, &fenced, WorkerOp::ReportUsage, now) {
                    Fence::Proceed | Fence::Replay => Ok(exec.fairness_key.clone()),
                    Fence::Refuse(e) => Err(e),
                    Fence::Expired => Err(EngineError::LeaseLost),
                }
            })
            .await??;
        // Without a fairness key the execution is in no budget's scope.
        let Some(scope) = scope else {
            return Ok(Vec::new());
        };
        let policies = self.load_policies(&handle.namespace).await?;
        let set = PolicySet::new(&policies);
        let now = self.now_ms();
        let mut out = Vec::new();
        for (name, budget) in set.budgets_for(&scope) {
            let (b, key, amounts) = (
                budget.clone(),
                report.dedup_key.clone(),
                report.amounts.clone(),
            );
            let before = budget.current(self.load_usage(&handle.namespace, name).await?, now);
            let usage = self
                .update_usage(
                    &handle.namespace,
                    name,
                    Box::new(move |usage| b.report(usage, &key, &amounts, now).0),
                )
                .await?;
            let status = budget.status(name, usage, now);
            let newly_hard = matches!(status.standing, Standing::Hard { .. })
                && !matches!(budget.standing(&before), Standing::Hard { .. });
            if newly_hard && budget.cancel_pending {
                for id in self.pending_flow_members(&handle.namespace, &scope).await? {
                    self.cancel(id).await?;
                }
            }
            out.push(status);
        }
        Ok(out)
    }

    async fn budget(&self, namespace: &str, name: &str) -> Result<BudgetStatus, EngineError> {
        let limits = self.limits();
        limits.check_name("namespace", namespace)?;
        limits.check_name("name", name)?;
        let policies = self.load_policies(namespace).await?;
        let budget = policies
            .iter()
            .find_map(|p| match &p.spec {
                PolicySpec::Budget(b) if p.name == name => Some(b),
                _ => None,
            })
            .ok_or_else(|| EngineError::NotFound {
                entity: "budget",
                id: name.to_owned(),
            })?;
        let usage = self.load_usage(namespace, name).await?;
        Ok(budget.status(name, usage, self.now_ms()))
    }

    async fn held(&self, exec: &Execution) -> Result<Option<Held>, EngineError> {
        if !matches!(exec.state, State::Ready | State::Scheduled) {
            return Ok(None);
        }
        let policies = self.load_policies(&exec.namespace).await?;
        let set = PolicySet::new(&policies);
        let mut gate = ClaimGate::new(&set, self.now_ms());
        let keys = gate.limited_keys(exec);
        let running = match keys.concurrency {
            Some(key) => Some(self.running_with_key(&exec.namespace, key).await?),
            None => None,
        };
        let bucket = match keys.rate {
            Some(key) => self.load_bucket(&exec.namespace, key).await?,
            None => None,
        };
        gate.prepare(
            exec,
            |_| Ok::<_, EngineError>(running.unwrap_or(0)),
            |_| Ok(bucket),
        )?;
        for (name, _) in exec
            .fairness_key
            .as_deref()
            .map(|scope| set.budgets_for(scope).collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let usage = self.load_usage(&exec.namespace, name).await?;
            gate.set_usage(name, usage);
        }
        Ok(gate.check(exec))
    }

    async fn concurrency_running(&self, namespace: &str, key: &str) -> Result<u32, EngineError> {
        let limits = self.limits();
        limits.check_name("namespace", namespace)?;
        limits.check_name("key", key)?;
        self.running_with_key(namespace, key).await
    }

    fn passed_over(&self) -> PassedOverCounts {
        self.passed_over_tally().snapshot()
    }
}
