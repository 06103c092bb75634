//! Identifiers: UUIDv7, so ids sort by creation time.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::EngineError;

/// The last id handed out by this process; new ids are kept strictly above
/// it so that ids created in the same millisecond still sort in creation
/// order (claim order breaks ties by id).
static LAST_ID: Mutex<u128> = Mutex::new(0);

fn next_v7() -> Uuid {
    let fresh = Uuid::now_v7().as_u128();
    let mut last = LAST_ID
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let value = if fresh > *last {
        fresh
    } else {
        // Step inside the random bits; the version and variant bits stay intact
        // as long as the low 62 bits do not overflow, which a same-millisecond
        // burst never reaches.
        *last + 1
    };
    *last = value;
    Uuid::from_u128(value)
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = "uuid"))]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> Self {
                Self(next_v7())
            }

            /// Wraps an existing UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// The 16 bytes of the UUID, for storage.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// Rebuilds an id from its 16 stored bytes.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, EngineError> {
                Uuid::from_slice(bytes)
                    .map(Self)
                    .map_err(|_| EngineError::invalid($what, "not a 16-byte id"))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = EngineError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| EngineError::invalid($what, format!("`{s}` is not a UUID")))
            }
        }
    };
}

uuid_id!(
    /// Identifies one execution.
    ExecutionId,
    "execution_id"
);
uuid_id!(
    /// Identifies one flow.
    FlowId,
    "flow_id"
);
uuid_id!(
    /// Identifies one signal delivered to a waitpoint.
    SignalId,
    "signal_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_strictly_increasing() {
        let ids: Vec<ExecutionId> = (0..10_000).map(|_| ExecutionId::new()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.iter().all(|id| id.as_uuid().get_version_num() == 7));
    }

    #[test]
    fn parse_rejects_garbage() {
        let err = "nope".parse::<ExecutionId>().unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Invalid);
    }
}
