//! The lease token: a lease's secret, handed to the claimer only.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::EngineError;

/// 122 random bits drawn at claim (a version-4 UUID's, from the operating
/// system's generator), stored with the lease and written as 32 lowercase
/// hex digits. Every worker operation compares it in constant time, so a
/// handle cannot be guessed from an execution's id, attempt and epoch.
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(value_type = String, pattern = "^[0-9a-f]{32}$")
)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseToken(u128);

impl LeaseToken {
    /// A fresh token.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().as_u128())
    }

    /// Whether `other` is this token, in time independent of where they differ.
    pub fn matches(&self, other: &LeaseToken) -> bool {
        let diff = self.0 ^ other.0;
        // Folding the halves keeps the compare branch-free on every target.
        ((diff >> 64) as u64 | diff as u64) == 0
    }
}

impl fmt::Display for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Never prints the secret.
impl fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LeaseToken(..)")
    }
}

impl FromStr for LeaseToken {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let well_formed = s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
        well_formed
            .then(|| u128::from_str_radix(s, 16).ok())
            .flatten()
            .map(Self)
            .ok_or_else(|| EngineError::invalid("lease_token", "must be 32 hex digits"))
    }
}

impl Serialize for LeaseToken {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LeaseToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_32_hex_digits() {
        let token = LeaseToken::random();
        let text = token.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<LeaseToken>().ok(), Some(token));
        let json = serde_json::to_string(&token).unwrap_or_default();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<LeaseToken>(&json).ok(), Some(token));
    }

    #[test]
    fn refuses_what_is_not_a_token() {
        for bad in [
            "",
            "abc",
            "+0000000000000000000000000000000",
            &"g".repeat(32),
        ] {
            assert!(bad.parse::<LeaseToken>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tokens_differ_and_match_only_themselves() {
        let a = LeaseToken::random();
        let b = LeaseToken::random();
        assert_ne!(a, b);
        assert!(a.matches(&a));
        assert!(!a.matches(&b));
        assert_eq!(format!("{a:?}"), "LeaseToken(..)");
    }
}
