//! Helpers the flow-control scenarios share.

use std::collections::BTreeMap;

use ff_core::flow_control::{
    BudgetPolicy, ConcurrencyPolicy, DimensionLimit, FairSharePolicy, KeyPattern, Policy,
    PolicySpec, RateLimitPolicy,
};
use ff_core::{Claimed, ExecutionId, Limits};

use crate::TestBackend;

pub const NS: &str = "default";

pub fn pattern(text: &str) -> KeyPattern {
    KeyPattern::parse(text, &Limits::default()).expect("pattern")
}

pub fn concurrency(key: &str, limit: u32) -> PolicySpec {
    PolicySpec::Concurrency(ConcurrencyPolicy {
        pattern: pattern(key),
        limit,
    })
}

pub fn rate(key: &str, n: u64, window_ms: u64, burst: u64) -> PolicySpec {
    PolicySpec::Rate(RateLimitPolicy {
        pattern: pattern(key),
        n,
        window_ms,
        burst,
    })
}

pub fn budget(scope: &str, soft: Option<u64>, hard: Option<u64>) -> BudgetPolicy {
    BudgetPolicy {
        scope: scope.to_owned(),
        limits: vec![DimensionLimit {
            dimension: "tokens".to_owned(),
            soft,
            hard,
        }],
        reset_every_ms: None,
        cancel_pending: false,
    }
}

pub fn fair(lane: &str, weights: &[(&str, u32)]) -> PolicySpec {
    PolicySpec::FairShare(FairSharePolicy {
        lane: lane.to_owned(),
        weights: weights.iter().map(|(k, w)| ((*k).to_owned(), *w)).collect(),
        default_weight: 1,
    })
}

pub async fn put(b: &TestBackend, name: &str, spec: PolicySpec) -> Policy {
    b.engine
        .put_policy(NS, name, spec)
        .await
        .expect("put policy")
}

pub fn tokens(n: u64) -> BTreeMap<String, u64> {
    BTreeMap::from([("tokens".to_owned(), n)])
}

pub fn ids(claimed: &[Claimed]) -> Vec<ExecutionId> {
    claimed.iter().map(|c| c.handle.execution_id).collect()
}
