//! `FlowControlStore` for the reference backend, and its claim: the
//! policies, buckets, usage and fair-share credits in the store, every
//! claim one [`select`] under the store's lock.

use std::collections::BTreeMap;

use async_trait::async_trait;
use ff_core::flow_control::{
    select, Bucket, ClaimGate, Credits, LaneSource, PassedOver, Policy, PolicySet, PolicySpec,
    Usage,
};
use ff_core::{
    lease, ClaimRequest, Claimed, EngineError, Execution, ExecutionId, FlowControlStore,
    LeaseToken, Millis, State,
};

use super::{ReferenceBackend, Store};

/// A namespace and a name in it.
pub(super) type Named = (String, String);

/// The flow-control state of the store.
#[derive(Debug, Default, Clone)]
pub(super) struct FlowControl {
    pub(super) policies: BTreeMap<Named, Policy>,
    pub(super) buckets: BTreeMap<Named, Bucket>,
    pub(super) usage: BTreeMap<Named, Usage>,
    /// Fair-share credits per (namespace, lane).
    pub(super) credits: BTreeMap<Named, Credits>,
}

fn named(namespace: &str, name: &str) -> Named {
    (namespace.to_owned(), name.to_owned())
}

impl FlowControl {
    fn policies(&self, namespace: &str) -> Vec<Policy> {
        self.policies
            .range(named(namespace, "")..)
            .take_while(|((ns, _), _)| ns == namespace)
            .map(|(_, p)| p.clone())
            .collect()
    }
}

impl Store {
    fn running_with_key(&self, namespace: &str, key: &str, now: Millis) -> u32 {
        let n = self
            .executions
            .values()
            .filter(|e| {
                e.namespace == namespace
                    && e.concurrency_key.as_deref() == Some(key)
                    && e.holds_slot(now)
            })
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Claims up to `req.n` in claim order, passing over what the policies
    /// hold, through `ff_core`'s claim rule.
    pub(super) fn claim(
        &mut self,
        req: &ClaimRequest,
        now: Millis,
        tally: &PassedOver,
    ) -> Vec<Claimed> {
        let ns = req.namespace.as_str();
        let set = PolicySet::new(&self.flow_control.policies(ns));
        let mut gate = ClaimGate::new(&set, now);
        // Every running key, bucket and budget loaded: what they hold
        // outright is left out, as the stores leave it out when they read.
        let mut running: BTreeMap<&str, u32> = BTreeMap::new();
        for e in self.executions.values() {
            if let Some(key) = e.concurrency_key.as_deref() {
                if e.namespace == ns && e.holds_slot(now) {
                    *running.entry(key).or_insert(0) += 1;
                }
            }
        }
        for (key, n) in running {
            gate.set_running(key, n);
        }
        for ((bucket_ns, key), bucket) in &self.flow_control.buckets {
            if bucket_ns == ns {
                gate.set_bucket(key, Some(*bucket));
            }
        }
        for (name, _) in set.budgets() {
            let usage = self.flow_control.usage.get(&named(ns, name));
            gate.set_usage(name, usage.cloned().unwrap_or_default());
        }
        let held = gate.held_keys();
        let held_now = |e: &Execution| {
            let among = |list: &[String], key: &Option<String>| {
                key.as_ref().is_some_and(|k| list.contains(k))
            };
            among(&held.full, &e.concurrency_key)
                || among(&held.empty, &e.rate_key)
                || among(&held.broke, &e.fairness_key)
        };
        let mut lanes = Vec::with_capacity(req.lanes.len());
        for lane in &req.lanes {
            let mut candidates: Vec<&Execution> = self
                .executions
                .values()
                .filter(|e| {
                    e.namespace == req.namespace
                        && &e.lane == lane
                        && e.is_claimable(now)
                        && e.capabilities_met_by(&req.capabilities)
                        && !held_now(e)
                })
                .collect();
            candidates.sort_by_key(|e| e.order_key());
            let ids: Vec<(ExecutionId, Execution)> =
                candidates.iter().map(|e| (e.id, (*e).clone())).collect();
            lanes.push(match set.fair_share(lane) {
                None => LaneSource::plain(ids.into_iter()),
                Some(fair) => {
                    let mut keys: BTreeMap<String, Vec<(ExecutionId, Execution)>> = BTreeMap::new();
                    for c in ids {
                        keys.entry(c.1.fairness().to_owned()).or_default().push(c);
                    }
                    let credits = self
                        .flow_control
                        .credits
                        .get(&named(&req.namespace, lane))
                        .cloned()
                        .unwrap_or_default();
                    LaneSource::Fair {
                        keys: keys
                            .into_iter()
                            .map(|(k, c)| (k.clone(), fair.weight(&k), c.into_iter().peekable()))
                            .collect(),
                        credits,
                    }
                }
            });
        }
        let mut passed = Vec::new();
        let picked = select(
            &mut lanes,
            &mut gate,
            req.n as usize,
            |(_, e)| e,
            |_, _| {},
            &mut passed,
        );
        tally.add(&passed);
        for (lane, source) in req.lanes.iter().zip(&lanes) {
            if let Some(credits) = source.credits() {
                self.flow_control
                    .credits
                    .insert(named(&req.namespace, lane), credits.clone());
            }
        }
        for (key, bucket) in gate.changed_buckets() {
            self.flow_control
                .buckets
                .insert(named(&req.namespace, &key), bucket);
        }
        picked
            .into_iter()
            .filter_map(|(id, _)| {
                let exec = self.executions.get_mut(&id)?;
                Some(lease::claim(
                    exec,
                    &req.worker_id,
                    LeaseToken::random(),
                    now,
                ))
            })
            .collect()
    }
}

#[async_trait]
impl FlowControlStore for ReferenceBackend {
    async fn load_policies(&self, namespace: &str) -> Result<Vec<Policy>, EngineError> {
        Ok(self.with_store(|store, _| store.flow_control.policies(namespace)))
    }

    async fn store_policy(
        &self,
        namespace: &str,
        name: &str,
        spec: &PolicySpec,
    ) -> Result<Policy, EngineError> {
        let now = self.now();
        Ok(self.with_store(|store, effects| {
            let key = named(namespace, name);
            let version = store
                .flow_control
                .policies
                .get(&key)
                .map_or(0, |p| p.version)
                + 1;
            let policy = Policy {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                version,
                spec: spec.clone(),
                updated_at: now,
            };
            store.flow_control.policies.insert(key, policy.clone());
            // A raised limit may free work that waits.
            effects.work_ready = true;
            policy
        }))
    }

    async fn remove_policy(&self, namespace: &str, name: &str) -> Result<bool, EngineError> {
        Ok(self.with_store(|store, effects| {
            let key = named(namespace, name);
            store.flow_control.usage.remove(&key);
            let removed = store.flow_control.policies.remove(&key).is_some();
            effects.work_ready |= removed;
            removed
        }))
    }

    async fn load_usage(&self, namespace: &str, policy: &str) -> Result<Usage, EngineError> {
        Ok(self.with_store(|store, _| {
            let usage = store.flow_control.usage.get(&named(namespace, policy));
            usage.cloned().unwrap_or_default()
        }))
    }

    async fn update_usage(
        &self,
        namespace: &str,
        policy: &str,
        mut update: Box<dyn FnMut(Usage) -> Usage + Send>,
    ) -> Result<Usage, EngineError> {
        Ok(self.with_store(|store, _| {
            let usage = store
                .flow_control
                .usage
                .entry(named(namespace, policy))
                .or_default();
            *usage = update(std::mem::take(usage));
            usage.clone()
        }))
    }

    async fn running_with_key(&self, namespace: &str, key: &str) -> Result<u32, EngineError> {
        let now = self.now();
        Ok(self.with_store(|store, _| store.running_with_key(namespace, key, now)))
    }

    async fn load_bucket(&self, namespace: &str, key: &str) -> Result<Option<Bucket>, EngineError> {
        Ok(self.with_store(|store, _| {
            store
                .flow_control
                .buckets
                .get(&named(namespace, key))
                .copied()
        }))
    }

    fn passed_over_tally(&self) -> &PassedOver {
        &self.inner.passed_over
    }

    async fn pending_flow_members(
        &self,
        namespace: &str,
        scope: &str,
    ) -> Result<Vec<ExecutionId>, EngineError> {
        Ok(self.with_store(|store, _| {
            store
                .executions
                .values()
                .filter(|e| {
                    e.namespace == namespace
                        && e.flow.is_some()
                        && e.fairness_key.as_deref() == Some(scope)
                        && e.attempts.is_empty()
                        && matches!(e.state, State::Ready | State::Scheduled | State::Blocked)
                })
                .map(|e| e.id)
                .collect()
        }))
    }
}
