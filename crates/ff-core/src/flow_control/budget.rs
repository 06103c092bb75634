//! Budgets: usage that workers report against a scope (a tenant, a flow,
//! a customer), in named dimensions (`tokens`, `usd_cents`), each with an
//! optional soft and hard limit, starting over every reset interval. A
//! hard breach stops new claims for the scope; a soft one is recorded.
//!
//! Reports are idempotent per dedup key: the usage remembers the last
//! [`REMEMBERED_REPORTS`] keys of its window, so a worker's retried report
//! counts once.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::EngineError;
use crate::limits::Limits;

/// How many report keys a window remembers for idempotency.
pub const REMEMBERED_REPORTS: usize = 1024;
/// The most dimensions one budget may have.
pub const MAX_DIMENSIONS: usize = 16;

/// One dimension's limits.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DimensionLimit {
    pub dimension: String,
    #[serde(default)]
    pub soft: Option<u64>,
    #[serde(default)]
    pub hard: Option<u64>,
}

/// A scope's budget.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetPolicy {
    pub scope: String,
    pub limits: Vec<DimensionLimit>,
    /// Usage starts over every this many milliseconds (windows aligned to
    /// the epoch); none keeps it for good.
    #[serde(default)]
    pub reset_every_ms: Option<u64>,
    /// On a hard breach, cancel the scope's flow members not yet started.
    #[serde(default)]
    pub cancel_pending: bool,
}

/// A scope's usage in its current window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub window_start: Millis,
    pub used: BTreeMap<String, u64>,
    /// The window's latest report keys, oldest first.
    pub reports: VecDeque<String>,
}

/// How a scope stands against its limits.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Standing {
    Within,
    /// These dimensions reached their soft limit: recorded, claims go on.
    Soft {
        dimensions: Vec<String>,
    },
    /// These reached their hard limit: no new claims for the scope.
    Hard {
        dimensions: Vec<String>,
    },
}

impl BudgetPolicy {
    pub fn validate(&self, limits: &Limits) -> Result<(), EngineError> {
        limits.check_name("scope", &self.scope)?;
        if self.limits.is_empty() || self.limits.len() > MAX_DIMENSIONS {
            return Err(EngineError::invalid(
                "limits",
                format!("name 1 to {MAX_DIMENSIONS} dimensions"),
            ));
        }
        for (i, limit) in self.limits.iter().enumerate() {
            let field = format!("limits[{i}]");
            limits
                .check_name("dimension", &limit.dimension)
                .map_err(|e| e.in_field(&field))?;
            if self.limits[..i]
                .iter()
                .any(|l| l.dimension == limit.dimension)
            {
                return Err(EngineError::invalid(field, "the dimension is named twice"));
            }
            match (limit.soft, limit.hard) {
                (None, None) => {
                    return Err(EngineError::invalid(field, "set a soft or a hard limit"))
                }
                (Some(soft), Some(hard)) if soft > hard => {
                    return Err(EngineError::invalid(
                        field,
                        "the soft limit must not be above the hard one",
                    ))
                }
                _ => {}
            }
        }
        if self.reset_every_ms == Some(0) {
            return Err(EngineError::invalid(
                "reset_every_ms",
                "must be greater than zero",
            ));
        }
        Ok(())
    }

    /// The start of the window holding `now`.
    pub fn window_start(&self, now: Millis) -> Millis {
        match self.reset_every_ms.and_then(|ms| Millis::try_from(ms).ok()) {
            Some(every) => now.div_euclid(every) * every,
            None => 0,
        }
    }

    /// `usage` as of `now`: empty when its window has passed.
    pub fn current(&self, usage: Usage, now: Millis) -> Usage {
        let start = self.window_start(now);
        if usage.window_start == start {
            usage
        } else {
            Usage {
                window_start: start,
                ..Usage::default()
            }
        }
    }

    /// Adds a report of `amounts` under `key` at `now`; a key already
    /// reported in the window changes nothing. Returns the usage after and
    /// whether the report was a repeat.
    pub fn report(
        &self,
        usage: Usage,
        key: &str,
        amounts: &BTreeMap<String, u64>,
        now: Millis,
    ) -> (Usage, bool) {
        let mut usage = self.current(usage, now);
        if usage.reports.iter().any(|k| k == key) {
            return (usage, true);
        }
        // Only the dimensions this budget limits are kept, so what a
        // worker reports cannot grow the record without bound.
        for limit in &self.limits {
            if let Some(amount) = amounts.get(&limit.dimension) {
                let used = usage.used.entry(limit.dimension.clone()).or_insert(0);
                *used = used.saturating_add(*amount);
            }
        }
        usage.reports.push_back(key.to_owned());
        while usage.reports.len() > REMEMBERED_REPORTS {
            usage.reports.pop_front();
        }
        (usage, false)
    }

    /// Where `usage` stands: hard breaches first, then soft ones.
    pub fn standing(&self, usage: &Usage) -> Standing {
        let used = |d: &str| usage.used.get(d).copied().unwrap_or(0);
        let over = |limit: fn(&DimensionLimit) -> Option<u64>| -> Vec<String> {
            self.limits
                .iter()
                .filter(|l| limit(l).is_some_and(|max| used(&l.dimension) >= max))
                .map(|l| l.dimension.clone())
                .collect()
        };
        let hard = over(|l| l.hard);
        if !hard.is_empty() {
            return Standing::Hard { dimensions: hard };
        }
        let soft = over(|l| l.soft);
        if !soft.is_empty() {
            return Standing::Soft { dimensions: soft };
        }
        Standing::Within
    }

    /// What is left before each dimension's hard limit (`None`: no hard
    /// limit).
    pub fn remaining(&self, usage: &Usage) -> BTreeMap<String, Option<u64>> {
        self.limits
            .iter()
            .map(|l| {
                let used = usage.used.get(&l.dimension).copied().unwrap_or(0);
                (l.dimension.clone(), l.hard.map(|h| h.saturating_sub(used)))
            })
            .collect()
    }
}

/// A worker's report of what one attempt spent.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    /// A second report with the same key changes nothing.
    pub dedup_key: String,
    /// Amount spent per dimension, e.g. `{"tokens": 1200, "usd_cents": 3}`.
    pub amounts: BTreeMap<String, u64>,
}

impl UsageReport {
    /// Checks the report; changes nothing.
    pub fn validate(&self, limits: &Limits) -> Result<(), EngineError> {
        if self.dedup_key.is_empty() {
            return Err(EngineError::invalid("dedup_key", "must not be empty"));
        }
        limits.check_size("dedup_key", self.dedup_key.len(), limits.max_tag_bytes)?;
        if self.amounts.is_empty() || self.amounts.len() > MAX_DIMENSIONS {
            return Err(EngineError::invalid(
                "amounts",
                format!("name 1 to {MAX_DIMENSIONS} dimensions"),
            ));
        }
        for dimension in self.amounts.keys() {
            limits.check_name("amounts", dimension)?;
        }
        Ok(())
    }
}

/// A budget as it stands: usage in the current window, what remains of
/// each hard limit, and whether a limit is breached.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetStatus {
    pub policy: String,
    pub scope: String,
    pub window_start: Millis,
    pub used: BTreeMap<String, u64>,
    /// Per dimension, what the hard limit leaves (`null`: no hard limit).
    pub remaining: BTreeMap<String, Option<u64>>,
    pub standing: Standing,
}

impl BudgetPolicy {
    /// The status of this budget, named `policy`, with `usage` at `now`.
    pub fn status(&self, policy: &str, usage: Usage, now: Millis) -> BudgetStatus {
        let usage = self.current(usage, now);
        BudgetStatus {
            policy: policy.to_owned(),
            scope: self.scope.clone(),
            window_start: usage.window_start,
            remaining: self.remaining(&usage),
            standing: self.standing(&usage),
            used: usage.used,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(reset: Option<u64>) -> BudgetPolicy {
        BudgetPolicy {
            scope: "tenant:acme".to_owned(),
            limits: vec![
                DimensionLimit {
                    dimension: "tokens".to_owned(),
                    soft: Some(800),
                    hard: Some(1_000),
                },
                DimensionLimit {
                    dimension: "usd_cents".to_owned(),
                    soft: None,
                    hard: Some(50),
                },
            ],
            reset_every_ms: reset,
            cancel_pending: false,
        }
    }

    fn amounts(tokens: u64, cents: u64) -> BTreeMap<String, u64> {
        BTreeMap::from([
            ("tokens".to_owned(), tokens),
            ("usd_cents".to_owned(), cents),
        ])
    }

    #[test]
    fn soft_then_hard_breaches() {
        let p = policy(None);
        let (usage, _) = p.report(Usage::default(), "r1", &amounts(500, 1), 0);
        assert_eq!(p.standing(&usage), Standing::Within);
        let (usage, _) = p.report(usage, "r2", &amounts(300, 1), 0);
        assert_eq!(
            p.standing(&usage),
            Standing::Soft {
                dimensions: vec!["tokens".to_owned()]
            }
        );
        let (usage, _) = p.report(usage, "r3", &amounts(0, 48), 0);
        assert_eq!(
            p.standing(&usage),
            Standing::Hard {
                dimensions: vec!["usd_cents".to_owned()]
            }
        );
        assert_eq!(p.remaining(&usage)["tokens"], Some(200));
        assert_eq!(p.remaining(&usage)["usd_cents"], Some(0));
    }

    #[test]
    fn a_repeated_report_counts_once() {
        let p = policy(None);
        let (usage, repeat) = p.report(Usage::default(), "r1", &amounts(100, 0), 0);
        assert!(!repeat);
        let (usage, repeat) = p.report(usage, "r1", &amounts(100, 0), 5);
        assert!(repeat);
        assert_eq!(usage.used["tokens"], 100);
    }

    #[test]
    fn usage_starts_over_each_window() {
        let p = policy(Some(60_000));
        let (usage, _) = p.report(Usage::default(), "r1", &amounts(1_000, 0), 59_999);
        assert!(matches!(p.standing(&usage), Standing::Hard { .. }));
        let usage = p.current(usage, 60_000);
        assert_eq!(usage.window_start, 60_000);
        assert_eq!(p.standing(&usage), Standing::Within);
        // A key reported in an earlier window counts again in a new one.
        let (usage, repeat) = p.report(usage, "r1", &amounts(1, 0), 60_001);
        assert!(!repeat);
        assert_eq!(usage.used["tokens"], 1);
    }

    #[test]
    fn bad_policies_name_their_field() {
        let limits = Limits::default();
        let mut p = policy(Some(0));
        assert_eq!(
            p.validate(&limits)
                .err()
                .and_then(|e| e.field().map(str::to_owned))
                .as_deref(),
            Some("reset_every_ms")
        );
        p.reset_every_ms = None;
        p.limits[0].soft = Some(2_000);
        assert_eq!(
            p.validate(&limits)
                .err()
                .and_then(|e| e.field().map(str::to_owned))
                .as_deref(),
            Some("limits[0]")
        );
        p.limits[0].soft = None;
        p.limits[1].dimension = "tokens".to_owned();
        assert!(p.validate(&limits).is_err());
    }

    #[test]
    fn old_report_keys_are_forgotten_beyond_the_window_memory() {
        let p = policy(None);
        let mut usage = Usage::default();
        for i in 0..=REMEMBERED_REPORTS {
            usage = p.report(usage, &format!("r{i}"), &amounts(0, 0), 0).0;
        }
        assert_eq!(usage.reports.len(), REMEMBERED_REPORTS);
        assert_eq!(usage.reports.front().map(String::as_str), Some("r1"));
    }
}
