//! Resume conditions: when the signals a suspended execution has received
//! are enough to resume it. Pure: the caller passes the suspension's
//! waitpoints and the waitpoint of each signal delivered so far.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// When a suspension is satisfied.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResumeCondition {
    /// The first signal to any of the waitpoints.
    Any,
    /// A signal to every waitpoint.
    All,
    /// `n` signals in all; with `distinct`, to `n` different waitpoints.
    Count {
        n: u32,
        #[serde(default)]
        distinct: bool,
    },
}

impl ResumeCondition {
    /// Checks the condition against the waitpoints it is to wait on: at
    /// least one, each named once, and a count that can be reached.
    pub fn validate(&self, waitpoints: &[String]) -> Result<(), EngineError> {
        if waitpoints.is_empty() {
            return Err(EngineError::invalid(
                "waitpoints",
                "name at least one waitpoint",
            ));
        }
        let mut seen = HashSet::with_capacity(waitpoints.len());
        if let Some(twice) = waitpoints.iter().find(|key| !seen.insert(key.as_str())) {
            return Err(EngineError::invalid(
                "waitpoints",
                format!("`{twice}` is named twice"),
            ));
        }
        match *self {
            Self::Count { n: 0, .. } => {
                Err(EngineError::invalid("condition.n", "must be at least 1"))
            }
            Self::Count { n, distinct: true } if n as usize > waitpoints.len() => {
                Err(EngineError::invalid(
                    "condition.n",
                    format!(
                        "{n} distinct waitpoints cannot be reached with {}",
                        waitpoints.len()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Whether the signals delivered so far satisfy the condition.
    /// `signalled` holds the waitpoint key of each signal, in any order, a
    /// key once per signal; signals to keys outside `waitpoints` do not
    /// count.
    pub fn is_met<'a>(
        &self,
        waitpoints: &[String],
        signalled: impl IntoIterator<Item = &'a str>,
    ) -> bool {
        let waited: HashSet<&str> = waitpoints.iter().map(String::as_str).collect();
        let mut total = 0usize;
        let mut distinct = HashSet::new();
        for key in signalled.into_iter().filter(|key| waited.contains(key)) {
            total += 1;
            distinct.insert(key);
        }
        match *self {
            Self::Any => total > 0,
            Self::All => distinct.len() == waited.len(),
            Self::Count { n, distinct: false } => total >= n as usize,
            Self::Count { n, distinct: true } => distinct.len() >= n as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ResumeCondition::{self, All, Any, Count};

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn met(condition: ResumeCondition, waitpoints: &[&str], signalled: &[&str]) -> bool {
        condition.is_met(&keys(waitpoints), signalled.iter().copied())
    }

    #[test]
    fn any_needs_one_signal_to_a_waitpoint() {
        assert!(!met(Any, &["a", "b"], &[]));
        assert!(!met(Any, &["a", "b"], &["elsewhere"]));
        assert!(met(Any, &["a", "b"], &["b"]));
    }

    #[test]
    fn all_needs_every_waitpoint() {
        assert!(!met(All, &["a", "b"], &["a", "a"]));
        assert!(met(All, &["a", "b"], &["b", "a"]));
    }

    #[test]
    fn count_counts_signals_or_distinct_waitpoints() {
        let plain = Count {
            n: 2,
            distinct: false,
        };
        let distinct = Count {
            n: 2,
            distinct: true,
        };
        assert!(met(plain, &["a", "b"], &["a", "a"]));
        assert!(!met(distinct, &["a", "b"], &["a", "a"]));
        assert!(met(distinct, &["a", "b", "c"], &["c", "a"]));
        assert!(!met(plain, &["a"], &["a", "x"]));
    }

    #[test]
    fn a_condition_that_cannot_be_met_is_refused() {
        let field = |c: ResumeCondition, w: &[&str]| {
            c.validate(&keys(w))
                .err()
                .and_then(|e| e.field().map(str::to_owned))
        };
        assert_eq!(field(Any, &[]).as_deref(), Some("waitpoints"));
        assert_eq!(field(All, &["a", "a"]).as_deref(), Some("waitpoints"));
        let zero = Count {
            n: 0,
            distinct: false,
        };
        assert_eq!(field(zero, &["a"]).as_deref(), Some("condition.n"));
        let too_many = Count {
            n: 3,
            distinct: true,
        };
        assert_eq!(field(too_many, &["a", "b"]).as_deref(), Some("condition.n"));
        let repeated = Count {
            n: 3,
            distinct: false,
        };
        assert_eq!(field(repeated, &["a", "b"]), None);
    }

    #[test]
    fn the_condition_reads_as_tagged_json() {
        let json = r#"{"kind":"count","n":2,"distinct":true}"#;
        let parsed: ResumeCondition = serde_json::from_str(json).expect("parses");
        assert_eq!(
            parsed,
            Count {
                n: 2,
                distinct: true
            }
        );
        let any: ResumeCondition = serde_json::from_str(r#"{"kind":"any"}"#).expect("parses");
        assert_eq!(any, Any);
    }
}
