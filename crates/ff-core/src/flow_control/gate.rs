//! The admission decision a claim makes for each candidate, in the same
//! atomic step as taking it: a hard-breached budget, a concurrency key at
//! its limit or a rate key without a token passes the candidate over, and
//! the claim goes on to the next one. The backend loads the state the
//! candidates name (running counts, buckets, usage) into the gate and
//! stores the buckets the gate changed.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::budget::{Standing, Usage};
use super::policy::PolicySet;
use super::rate::Bucket;
use crate::clock::Millis;
use crate::execution::Execution;

/// Why a claim passed a candidate over.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Held {
    /// Its concurrency key has `running` of `limit` running.
    Concurrency {
        key: String,
        running: u32,
        limit: u32,
    },
    /// Its rate key has no token before `next_at`.
    Rate { key: String, next_at: Millis },
    /// Budget `policy` of its scope is over its hard limit in `dimensions`.
    Budget {
        policy: String,
        dimensions: Vec<String>,
    },
}

impl Held {
    /// The reason's name, as metrics label it.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Concurrency { .. } => "concurrency",
            Self::Rate { .. } => "rate",
            Self::Budget { .. } => "budget",
        }
    }
}

/// What holds candidates outright before a claim takes anything, as
/// loaded into its gate: a store leaves these out when it reads
/// candidates, so a backlog under one limit never hides the work behind it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldKeys {
    /// Concurrency keys at their limit.
    pub full: Vec<String>,
    /// Rate keys without a token now.
    pub empty: Vec<String>,
    /// Fairness keys (budget scopes) over a hard limit.
    pub broke: Vec<String>,
}

/// The keys of an execution that some policy limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitedKeys<'e> {
    pub concurrency: Option<&'e str>,
    pub rate: Option<&'e str>,
}

/// One claim's admission state.
#[derive(Debug)]
pub struct ClaimGate<'p> {
    policies: &'p PolicySet,
    now: Millis,
    running: HashMap<String, u32>,
    buckets: BTreeMap<String, Bucket>,
    changed: Vec<String>,
    usage: HashMap<String, Usage>,
}

impl<'p> ClaimGate<'p> {
    pub fn new(policies: &'p PolicySet, now: Millis) -> Self {
        Self {
            policies,
            now,
            running: HashMap::new(),
            buckets: BTreeMap::new(),
            changed: Vec::new(),
            usage: HashMap::new(),
        }
    }

    /// The keys of `exec` a policy limits: the state the backend loads.
    pub fn limited_keys<'e>(&self, exec: &'e Execution) -> LimitedKeys<'e> {
        let concurrency = exec
            .concurrency_key
            .as_deref()
            .filter(|k| self.policies.concurrency_limit(k).is_some());
        let rate = exec
            .rate_key
            .as_deref()
            .filter(|k| self.policies.rate_for(k).is_some());
        LimitedKeys { concurrency, rate }
    }

    /// Loads what `exec`'s keys name and the gate does not hold yet: the
    /// running count of its concurrency key from `running`, the bucket of
    /// its rate key from `bucket`.
    pub fn prepare<E>(
        &mut self,
        exec: &Execution,
        running: impl FnOnce(&str) -> Result<u32, E>,
        bucket: impl FnOnce(&str) -> Result<Option<Bucket>, E>,
    ) -> Result<(), E> {
        let keys = self.limited_keys(exec);
        if let Some(key) = keys.concurrency.filter(|k| !self.running.contains_key(*k)) {
            let n = running(key)?;
            self.set_running(key, n);
        }
        if let Some(key) = keys.rate.filter(|k| !self.buckets.contains_key(*k)) {
            let b = bucket(key)?;
            self.set_bucket(key, b);
        }
        Ok(())
    }

    /// Loads how many executions with concurrency key `key` run now.
    pub fn set_running(&mut self, key: &str, running: u32) {
        self.running.insert(key.to_owned(), running);
    }

    /// Loads the stored bucket of rate key `key`; `None`: never used, full.
    pub fn set_bucket(&mut self, key: &str, bucket: Option<Bucket>) {
        if let Some(rate) = self.policies.rate_for(key) {
            let bucket = bucket.unwrap_or_else(|| rate.full(self.now));
            self.buckets.insert(key.to_owned(), bucket);
        }
    }

    /// Loads the stored usage of budget policy `policy`.
    pub fn set_usage(&mut self, policy: &str, usage: Usage) {
        self.usage.insert(policy.to_owned(), usage);
    }

    /// Decides whether a claim may take `exec` now; when it may, counts
    /// its concurrency slot and takes its rate token.
    pub fn admit(&mut self, exec: &Execution) -> Result<(), Held> {
        if let Some(held) = self.budget_hold(exec) {
            return Err(held);
        }
        let keys = self.limited_keys(exec);
        if let Some(key) = keys.concurrency {
            let limit = self.policies.concurrency_limit(key).unwrap_or(u32::MAX);
            let running = self.running.get(key).copied().unwrap_or(0);
            if running >= limit {
                return Err(Held::Concurrency {
                    key: key.to_owned(),
                    running,
                    limit,
                });
            }
        }
        if let (Some(key), Some(rate)) =
            (keys.rate, keys.rate.and_then(|k| self.policies.rate_for(k)))
        {
            let bucket = self
                .buckets
                .get(key)
                .copied()
                .unwrap_or_else(|| rate.full(self.now));
            match rate.take(bucket, self.now) {
                Ok(left) => {
                    self.buckets.insert(key.to_owned(), left);
                    if !self.changed.iter().any(|k| k == key) {
                        self.changed.push(key.to_owned());
                    }
                }
                Err(next_at) => {
                    return Err(Held::Rate {
                        key: key.to_owned(),
                        next_at,
                    })
                }
            }
        }
        if let Some(key) = keys.concurrency {
            *self.running.entry(key.to_owned()).or_insert(0) += 1;
        }
        Ok(())
    }

    /// What the loaded state holds outright; see [`HeldKeys`].
    pub fn held_keys(&self) -> HeldKeys {
        let mut held = HeldKeys::default();
        for (key, running) in &self.running {
            if self
                .policies
                .concurrency_limit(key)
                .is_some_and(|limit| *running >= limit)
            {
                held.full.push(key.clone());
            }
        }
        for (key, bucket) in &self.buckets {
            if let Some(rate) = self.policies.rate_for(key) {
                if rate.take(*bucket, self.now).is_err() {
                    held.empty.push(key.clone());
                }
            }
        }
        for (name, budget) in self.policies.budgets() {
            let usage = self.usage.get(name).cloned().unwrap_or_default();
            if matches!(
                budget.standing(&budget.current(usage, self.now)),
                Standing::Hard { .. }
            ) {
                held.broke.push(budget.scope.clone());
            }
        }
        held.full.sort();
        held.empty.sort();
        held.broke.sort();
        held
    }

    /// What would hold `exec` now, changing nothing (for "why").
    pub fn check(&self, exec: &Execution) -> Option<Held> {
        let mut probe = ClaimGate {
            policies: self.policies,
            now: self.now,
            running: self.running.clone(),
            buckets: self.buckets.clone(),
            changed: Vec::new(),
            usage: self.usage.clone(),
        };
        probe.admit(exec).err()
    }

    /// The buckets this claim took tokens from, as they are now.
    pub fn changed_buckets(&self) -> Vec<(String, Bucket)> {
        self.changed
            .iter()
            .filter_map(|k| self.buckets.get(k).map(|b| (k.clone(), *b)))
            .collect()
    }

    fn budget_hold(&self, exec: &Execution) -> Option<Held> {
        let scope = exec.fairness_key.as_deref()?;
        self.policies.budgets_for(scope).find_map(|(name, budget)| {
            let usage = budget.current(self.usage.get(name).cloned()?, self.now);
            match budget.standing(&usage) {
                Standing::Hard { dimensions } => Some(Held::Budget {
                    policy: name.to_owned(),
                    dimensions,
                }),
                _ => None,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow_control::budget::{BudgetPolicy, DimensionLimit};
    use crate::flow_control::concurrency::{ConcurrencyPolicy, KeyPattern};
    use crate::flow_control::policy::{Policy, PolicySpec, RateLimitPolicy};
    use crate::ids::ExecutionId;
    use crate::json::JsonText;
    use crate::limits::Limits;
    use crate::SubmitRequest;

    fn policy(name: &str, spec: PolicySpec) -> Policy {
        Policy {
            namespace: "default".into(),
            name: name.into(),
            version: 1,
            spec,
            updated_at: 0,
        }
    }

    fn pattern(text: &str) -> KeyPattern {
        KeyPattern::parse(text, &Limits::default()).expect("pattern")
    }

    fn exec(req: SubmitRequest) -> Execution {
        Execution::new(ExecutionId::new(), req, 0)
    }

    fn req() -> SubmitRequest {
        SubmitRequest::new("default", "job", JsonText::null())
    }

    #[test]
    fn concurrency_counts_slots_taken_in_the_same_claim() {
        let set = PolicySet::new(&[policy(
            "partner",
            PolicySpec::Concurrency(ConcurrencyPolicy {
                pattern: pattern("partner"),
                limit: 2,
            }),
        )]);
        let mut gate = ClaimGate::new(&set, 0);
        gate.set_running("partner", 1);
        let e = exec(req().concurrency_key("partner"));
        assert!(gate.admit(&e).is_ok());
        assert_eq!(
            gate.admit(&e),
            Err(Held::Concurrency {
                key: "partner".into(),
                running: 2,
                limit: 2
            })
        );
        assert!(gate.admit(&exec(req().concurrency_key("other"))).is_ok());
        assert!(gate.admit(&exec(req())).is_ok());
    }

    #[test]
    fn rate_takes_tokens_and_reports_the_next() {
        let set = PolicySet::new(&[policy(
            "per-customer",
            PolicySpec::Rate(RateLimitPolicy {
                pattern: pattern("customer:*"),
                n: 1,
                window_ms: 1_000,
                burst: 2,
            }),
        )]);
        let mut gate = ClaimGate::new(&set, 5_000);
        gate.set_bucket("customer:a", None);
        let e = exec(req().rate_key("customer:a"));
        assert!(gate.admit(&e).is_ok());
        assert!(gate.admit(&e).is_ok());
        assert_eq!(
            gate.check(&e),
            Some(Held::Rate {
                key: "customer:a".into(),
                next_at: 6_000
            })
        );
        assert_eq!(gate.changed_buckets().len(), 1);
    }

    #[test]
    fn a_hard_budget_breach_holds_its_scope_only() {
        let budget = BudgetPolicy {
            scope: "acme".into(),
            limits: vec![DimensionLimit {
                dimension: "tokens".into(),
                soft: None,
                hard: Some(10),
            }],
            reset_every_ms: None,
            cancel_pending: false,
        };
        let set = PolicySet::new(&[policy("acme-tokens", PolicySpec::Budget(budget.clone()))]);
        let mut gate = ClaimGate::new(&set, 0);
        let amounts = BTreeMap::from([("tokens".to_owned(), 10)]);
        let (usage, _) = budget.report(Usage::default(), "r1", &amounts, 0);
        gate.set_usage("acme-tokens", usage);
        assert!(matches!(
            gate.admit(&exec(req().fairness_key("acme"))),
            Err(Held::Budget { .. })
        ));
        assert!(gate.admit(&exec(req().fairness_key("other"))).is_ok());
    }
}
