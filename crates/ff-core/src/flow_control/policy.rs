//! Policies: named, versioned resources of a namespace, and the set of
//! them a claim consults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::budget::BudgetPolicy;
use super::concurrency::{self, ConcurrencyPolicy, KeyPattern};
use super::fairness::DEFAULT_WEIGHT;
use super::rate::RatePolicy;
use crate::clock::Millis;
use crate::error::EngineError;
use crate::limits::Limits;

/// The most policies one namespace may hold.
pub const MAX_POLICIES: usize = 1_000;

/// The most weights one fair-share policy may name.
pub const MAX_WEIGHTS: usize = 1_000;

/// The largest weight of one fairness key.
pub const MAX_WEIGHT: u32 = 1_000;

/// Rate limit of every key matching `pattern`: each key has its own bucket.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitPolicy {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "customer:*"))]
    pub pattern: KeyPattern,
    /// Tokens added per window.
    pub n: u64,
    pub window_ms: u64,
    /// The most tokens the bucket holds, so the most claims at once.
    pub burst: u64,
}

impl RateLimitPolicy {
    pub fn rate(&self) -> RatePolicy {
        RatePolicy {
            n: self.n,
            window_ms: self.window_ms,
            burst: self.burst,
        }
    }
}

/// How one lane is shared across fairness keys: each key's weight, and
/// the weight of the keys not named.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FairSharePolicy {
    pub lane: String,
    #[serde(default)]
    pub weights: BTreeMap<String, u32>,
    #[serde(default = "default_weight")]
    pub default_weight: u32,
}

fn default_weight() -> u32 {
    DEFAULT_WEIGHT
}

impl FairSharePolicy {
    pub fn weight(&self, key: &str) -> u32 {
        self.weights
            .get(key)
            .copied()
            .unwrap_or(self.default_weight)
    }
}

/// What a policy limits.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PolicySpec {
    Concurrency(ConcurrencyPolicy),
    Rate(RateLimitPolicy),
    Budget(BudgetPolicy),
    FairShare(FairSharePolicy),
}

impl PolicySpec {
    /// Checks the spec; changes nothing.
    pub fn validate(&self, limits: &Limits) -> Result<(), EngineError> {
        match self {
            Self::Concurrency(c) => c.validate(),
            Self::Rate(r) => r.rate().validate(),
            Self::Budget(b) => b.validate(limits),
            Self::FairShare(f) => {
                limits.check_name("lane", &f.lane)?;
                if f.weights.len() > MAX_WEIGHTS {
                    return Err(EngineError::invalid(
                        "weights",
                        format!("name at most {MAX_WEIGHTS} keys"),
                    ));
                }
                for (key, weight) in &f.weights {
                    limits.check_name("weights", key)?;
                    check_weight("weights", *weight)?;
                }
                check_weight("default_weight", f.default_weight)
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Concurrency(_) => "concurrency",
            Self::Rate(_) => "rate",
            Self::Budget(_) => "budget",
            Self::FairShare(_) => "fair_share",
        }
    }
}

fn check_weight(field: &str, weight: u32) -> Result<(), EngineError> {
    if weight == 0 || weight > MAX_WEIGHT {
        return Err(EngineError::invalid(
            field,
            format!("a weight must be 1..={MAX_WEIGHT}"),
        ));
    }
    Ok(())
}

/// A stored policy. `version` starts at 1 and grows with each change.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub namespace: String,
    pub name: String,
    pub version: u64,
    pub spec: PolicySpec,
    pub updated_at: Millis,
}

/// The policies of one namespace, as a claim consults them.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    concurrency: Vec<ConcurrencyPolicy>,
    rate: Vec<RateLimitPolicy>,
    budgets: Vec<(String, BudgetPolicy)>,
    fair: BTreeMap<String, FairSharePolicy>,
}

impl PolicySet {
    pub fn new(policies: &[Policy]) -> Self {
        let mut set = Self::default();
        for policy in policies {
            match &policy.spec {
                PolicySpec::Concurrency(c) => set.concurrency.push(c.clone()),
                PolicySpec::Rate(r) => set.rate.push(r.clone()),
                PolicySpec::Budget(b) => set.budgets.push((policy.name.clone(), b.clone())),
                PolicySpec::FairShare(f) => {
                    set.fair.insert(f.lane.clone(), f.clone());
                }
            }
        }
        set
    }

    /// Whether no policy applies to anything.
    pub fn is_empty(&self) -> bool {
        self.concurrency.is_empty()
            && self.rate.is_empty()
            && self.budgets.is_empty()
            && self.fair.is_empty()
    }

    /// The limit on executions running with concurrency key `key`.
    pub fn concurrency_limit(&self, key: &str) -> Option<u32> {
        concurrency::limit_for(&self.concurrency, key)
    }

    /// The rate that applies to rate key `key`: the most specific pattern.
    pub fn rate_for(&self, key: &str) -> Option<RatePolicy> {
        self.rate
            .iter()
            .filter(|r| r.pattern.matches(key))
            .max_by_key(|r| r.pattern.specificity())
            .map(RateLimitPolicy::rate)
    }

    /// The budgets (by policy name) that fairness key `scope` spends from.
    pub fn budgets_for<'a>(
        &'a self,
        scope: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a BudgetPolicy)> + 'a {
        self.budgets
            .iter()
            .filter(move |(_, b)| b.scope == scope)
            .map(|(name, b)| (name.as_str(), b))
    }

    /// Every budget, by policy name.
    pub fn budgets(&self) -> impl Iterator<Item = (&str, &BudgetPolicy)> {
        self.budgets.iter().map(|(name, b)| (name.as_str(), b))
    }

    /// The fair-share policy of `lane`, when one names it.
    pub fn fair_share(&self, lane: &str) -> Option<&FairSharePolicy> {
        self.fair.get(lane)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_read_as_tagged_json() {
        let spec: PolicySpec =
            serde_json::from_str(r#"{"kind":"concurrency","pattern":"partner","limit":5}"#)
                .expect("concurrency");
        assert_eq!(spec.kind(), "concurrency");
        let spec: PolicySpec = serde_json::from_str(
            r#"{"kind":"rate","pattern":"customer:*","n":100,"window_ms":60000,"burst":10}"#,
        )
        .expect("rate");
        assert!(spec.validate(&Limits::default()).is_ok());
        let spec: PolicySpec =
            serde_json::from_str(r#"{"kind":"fair_share","lane":"default","weights":{"a":3}}"#)
                .expect("fair share");
        let PolicySpec::FairShare(fair) = &spec else {
            panic!("fair share");
        };
        assert_eq!((fair.weight("a"), fair.weight("b")), (3, 1));
        let zero: PolicySpec =
            serde_json::from_str(r#"{"kind":"fair_share","lane":"default","weights":{"a":0}}"#)
                .expect("parses");
        assert!(zero.validate(&Limits::default()).is_err());
    }

    #[test]
    fn the_most_specific_rate_applies() {
        let rate = |pattern: &str, n| Policy {
            namespace: "ns".into(),
            name: pattern.into(),
            version: 1,
            spec: PolicySpec::Rate(RateLimitPolicy {
                pattern: KeyPattern::parse(pattern, &Limits::default()).expect("pattern"),
                n,
                window_ms: 1_000,
                burst: 1,
            }),
            updated_at: 0,
        };
        let set = PolicySet::new(&[rate("customer:*", 10), rate("customer:big", 100)]);
        assert_eq!(set.rate_for("customer:big").map(|r| r.n), Some(100));
        assert_eq!(set.rate_for("customer:x").map(|r| r.n), Some(10));
        assert_eq!(set.rate_for("other"), None);
    }
}
