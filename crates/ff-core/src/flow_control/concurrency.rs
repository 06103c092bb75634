//! Concurrency policies: at most `limit` executions running at once per
//! concurrency key, for one exact key (`partner-api`) or every key with a
//! prefix (`tenant:*`, each such key counted apart).

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::limits::Limits;

/// The most a concurrency limit may allow.
pub const MAX_CONCURRENCY: u32 = 100_000;

/// Which keys a policy covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyPattern {
    Exact(String),
    /// Every key starting with this, written `prefix*`.
    Prefix(String),
}

impl KeyPattern {
    /// `name` or `prefix*`; a `*` anywhere else is refused.
    pub fn parse(text: &str, limits: &Limits) -> Result<Self, EngineError> {
        let (body, prefix) = match text.strip_suffix('*') {
            Some(body) => (body, true),
            None => (text, false),
        };
        if body.contains('*') {
            return Err(EngineError::invalid(
                "pattern",
                "`*` may only end a pattern (`prefix*`)",
            ));
        }
        if prefix && body.is_empty() {
            return Ok(Self::Prefix(String::new()));
        }
        limits.check_name("pattern", body)?;
        Ok(if prefix {
            Self::Prefix(body.to_owned())
        } else {
            Self::Exact(body.to_owned())
        })
    }

    pub fn matches(&self, key: &str) -> bool {
        match self {
            Self::Exact(exact) => exact == key,
            Self::Prefix(prefix) => key.starts_with(prefix.as_str()),
        }
    }

    /// How closely it names `key`: an exact key beats every prefix, a
    /// longer prefix a shorter one.
    pub(crate) fn specificity(&self) -> usize {
        match self {
            Self::Exact(_) => usize::MAX,
            Self::Prefix(prefix) => prefix.len(),
        }
    }
}

impl Serialize for KeyPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Exact(key) => s.serialize_str(key),
            Self::Prefix(prefix) => s.serialize_str(&format!("{prefix}*")),
        }
    }
}

impl<'de> Deserialize<'de> for KeyPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text, &Limits::default()).map_err(serde::de::Error::custom)
    }
}

/// At most `limit` running at once per key `pattern` covers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConcurrencyPolicy {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "partner-api"))]
    pub pattern: KeyPattern,
    pub limit: u32,
}

impl ConcurrencyPolicy {
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.limit == 0 || self.limit > MAX_CONCURRENCY {
            return Err(EngineError::invalid(
                "limit",
                format!("must be 1..={MAX_CONCURRENCY}"),
            ));
        }
        Ok(())
    }
}

/// The limit on `key`: the most specific policy covering it, if any.
pub fn limit_for(policies: &[ConcurrencyPolicy], key: &str) -> Option<u32> {
    policies
        .iter()
        .filter(|p| p.pattern.matches(key))
        .max_by_key(|p| p.pattern.specificity())
        .map(|p| p.limit)
}

/// Whether one more execution of `key` may start with `running` of it
/// running now.
pub fn has_room(policies: &[ConcurrencyPolicy], key: &str, running: u32) -> bool {
    limit_for(policies, key).is_none_or(|limit| running < limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(pattern: &str, limit: u32) -> ConcurrencyPolicy {
        ConcurrencyPolicy {
            pattern: KeyPattern::parse(pattern, &Limits::default()).expect("pattern"),
            limit,
        }
    }

    #[test]
    fn the_most_specific_policy_applies() {
        let policies = [
            policy("tenant:*", 5),
            policy("tenant:big", 50),
            policy("*", 1),
        ];
        assert_eq!(limit_for(&policies, "tenant:big"), Some(50));
        assert_eq!(limit_for(&policies, "tenant:small"), Some(5));
        assert_eq!(limit_for(&policies, "other"), Some(1));
        assert_eq!(limit_for(&policies[..2], "other"), None);
    }

    #[test]
    fn room_is_below_the_limit() {
        let policies = [policy("partner", 3)];
        assert!(has_room(&policies, "partner", 2));
        assert!(!has_room(&policies, "partner", 3));
        assert!(has_room(&policies, "unlimited", 1_000));
    }

    #[test]
    fn patterns_round_trip_and_refuse_inner_stars() {
        let parsed: KeyPattern = serde_json::from_str("\"tenant:*\"").expect("parses");
        assert_eq!(parsed, KeyPattern::Prefix("tenant:".to_owned()));
        assert_eq!(
            serde_json::to_string(&parsed).expect("json"),
            "\"tenant:*\""
        );
        assert!(KeyPattern::parse("a*b", &Limits::default()).is_err());
        assert!(KeyPattern::parse("bad key", &Limits::default()).is_err());
        assert!(policy("x", 1).validate().is_ok());
        assert!(policy("x", 0).validate().is_err());
    }
}
