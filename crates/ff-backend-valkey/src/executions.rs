//! `ExecutionStore`: the storage side of the execution and lease operations
//! (`ff_core` checks the requests and derives `ExecutionOps`/`LeaseOps`);
//! submits are one `ff_v2_apply` per partition a batch touches.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;

use ff_core::{
    ClaimRequest, Claimed, EngineError, Execution, ExecutionId, ExecutionStore, Limits, ReadOps,
    Rule, SubmitRequest, Submitted, Valid,
};

use crate::write::{Outcome, Plan};
use crate::{leases, transition, ValkeyBackend, MAX_ATTEMPTS};

#[async_trait]
impl ExecutionStore for ValkeyBackend {
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
        self.claim_partitions(req).await
    }

    async fn claim_wait_valid(
        &self,
        req: &Valid<ClaimRequest>,
        timeout: Duration,
    ) -> Result<Vec<Claimed>, EngineError> {
        let claim = || self.claim_partitions(req);
        ff_backend_support::claim_wait(&self.inner.work, timeout, leases::RECHECK, claim).await
    }

    async fn submit_valid(
        &self,
        reqs: Valid<Vec<SubmitRequest>>,
    ) -> Result<Vec<Submitted>, EngineError> {
        self.insert_requests(reqs.into_inner()).await
    }
}

impl ValkeyBackend {
    /// Stores a batch. Requests with a flow-control key go to their
    /// namespace's home partition; requests with an idempotency key to the
    /// partition their key selects; the rest join the first such group, or
    /// one random partition. Each partition's share is one atomic call, so a batch
    /// that spans partitions (only on a multi-partition deployment, and only
    /// with keys) is atomic per partition.
    async fn insert_requests(
        &self,
        reqs: Vec<SubmitRequest>,
    ) -> Result<Vec<Submitted>, EngineError> {
        let keys = self.keys();
        let chosen = |r: &SubmitRequest| {
            if r.has_flow_control_keys() {
                Some(keys.flow_home(r.resolved_namespace()))
            } else {
                r.idempotency_key
                    .as_deref()
                    .map(|k| keys.key_partition(r.resolved_namespace(), k))
            }
        };
        let default_partition = reqs
            .iter()
            .find_map(chosen)
            .unwrap_or_else(|| keys.exec_partition(ExecutionId::new()));
        let mut groups: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, req) in reqs.iter().enumerate() {
            let p = chosen(req).unwrap_or(default_partition);
            groups.entry(p).or_default().push(i);
        }
        let mut answers: Vec<Option<Submitted>> = vec![None; reqs.len()];
        for (p, members) in groups {
            let group: Vec<&SubmitRequest> = members.iter().map(|&i| &reqs[i]).collect();
            let submitted = self.insert_group(p, &group).await?;
            for (i, answer) in members.into_iter().zip(submitted) {
                answers[i] = Some(answer);
            }
        }
        answers
            .into_iter()
            .map(|a| a.ok_or_else(|| EngineError::backend("a submit went unanswered")))
            .collect()
    }

    /// Inserts one partition's share, retried when a concurrent submit took
    /// one of its idempotency keys first.
    async fn insert_group(
        &self,
        p: u32,
        reqs: &[&SubmitRequest],
    ) -> Result<Vec<Submitted>, EngineError> {
        let keys = self.keys();
        for _ in 0..MAX_ATTEMPTS {
            let known = self.ids_by_key(p, reqs).await?;
            let now = self.now();
            // Keys taken by an earlier request of this share: its index in `fresh`.
            let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
            let mut fresh: Vec<Execution> = Vec::new();
            let mut plan = Plan::new(p);
            let mut answers = Vec::with_capacity(reqs.len());
            for req in reqs {
                let namespace = req.resolved_namespace();
                let key = req.idempotency_key.as_deref();
                if let Some(k) = key {
                    if let Some(&i) = seen.get(&(namespace, k)) {
                        answers.push(Submitted::repeat_of(&fresh[i], req));
                        continue;
                    }
                    if let Some(id) = known.get(&(namespace.to_owned(), k.to_owned())) {
                        // A repeat is rare: one read tells whether its spec differs.
                        let existing = self.get_execution(*id).await?;
                        answers.push(Submitted::repeat_of(&existing, req));
                        continue;
                    }
                }
                let exec = Execution::new(keys.new_execution_id(p), (*req).clone(), now);
                if let Some(k) = key {
                    let idem = keys.idempotency(p, namespace);
                    plan.check_absent(&idem, k);
                    plan.hset(&idem, k, &exec.id.to_string());
                    seen.insert((namespace, k), fresh.len());
                }
                plan.save(keys, None, &exec, now)?;
                answers.push(Submitted::created(exec.id));
                fresh.push(exec);
            }
            match self.commit(plan, now).await? {
                Outcome::Applied => return Ok(answers),
                Outcome::Conflict(what) => tracing::trace!(what, "submit raced; retrying"),
            }
        }
        Err(EngineError::Unavailable {
            message: "idempotency keys kept changing under this submit; try again".into(),
        })
    }

    /// The ids already stored for the group's idempotency keys.
    async fn ids_by_key(
        &self,
        p: u32,
        reqs: &[&SubmitRequest],
    ) -> Result<HashMap<(String, String), ExecutionId>, EngineError> {
        let mut by_namespace: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for req in reqs {
            if let Some(k) = req.idempotency_key.as_deref() {
                by_namespace
                    .entry(req.resolved_namespace())
                    .or_default()
                    .push(k);
            }
        }
        let mut known = HashMap::new();
        for (namespace, wanted) in by_namespace {
            let found: Vec<Option<String>> = self
                .inner
                .conn
                .query(
                    redis::cmd("HMGET")
                        .arg(self.keys().idempotency(p, namespace))
                        .arg(&wanted),
                )
                .await?;
            for (k, id) in wanted.into_iter().zip(found) {
                if let Some(id) = id {
                    known.insert((namespace.to_owned(), k.to_owned()), id.parse()?);
                }
            }
        }
        Ok(known)
    }
}
