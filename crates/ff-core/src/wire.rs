//! Errors as they cross HTTP: one plain serde type that `ff-server` writes
//! and `ff-sdk` reads, so a client rebuilds the [`EngineError`] from
//! structured fields and never from the wording of a message.

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::state::Outcome;

/// The JSON body of every error answer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ErrorBody))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// Stable and machine-readable: an [`crate::ErrorKind`] code (`not_found`,
    /// `invalid`, `lease_lost`, `not_active`, `conflict`, `unavailable`) or
    /// one of the server's own (`bad_request`, `malformed_json`,
    /// `payload_too_large`, `unsupported_media_type`, `unauthorized`,
    /// `method_not_allowed`, `internal`).
    #[serde(default)]
    pub code: String,
    /// For people; clients never parse it. For `invalid`, `conflict` and
    /// `unavailable` it is the reason alone, without the kind's prefix.
    #[serde(default)]
    pub message: String,
    /// `invalid`: the offending field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// `not_active`: the outcome recorded meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// `not_found`: what was looked for (`execution`, `flow`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// `not_found`: the id looked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `unavailable`: seconds after which a retry may succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// Seconds a client waits before retrying an `unavailable` answer.
pub const RETRY_AFTER_SECS: u64 = 1;

impl WireError {
    /// An error of the server's own, with no [`EngineError`] behind it.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            ..Self::default()
        }
    }

    /// The error a client sees for `err`. A `Backend` error says only that
    /// something went wrong inside: its text stays in the server's log.
    pub fn from_engine(err: &EngineError) -> Self {
        let mut wire = Self::new(err.kind().code(), err.to_string());
        match err {
            EngineError::NotFound { entity, id } => {
                wire.entity = Some((*entity).to_owned());
                wire.id = Some(id.clone());
            }
            EngineError::Invalid { field, message } => {
                wire.field = Some(field.clone());
                wire.message.clone_from(message);
            }
            EngineError::NotActive { outcome } => wire.outcome = Some(*outcome),
            EngineError::Conflict { message } => wire.message.clone_from(message),
            EngineError::Unavailable { message } => {
                wire.message.clone_from(message);
                wire.retry_after = Some(RETRY_AFTER_SECS);
            }
            EngineError::LeaseLost => {}
            _ => {
                wire.code = "internal".to_owned();
                wire.message = "internal error; see the server log".to_owned();
            }
        }
        wire
    }

    /// The [`EngineError`] this answer stands for, read from its code and
    /// fields alone; `None` when its code has no such kind (`unauthorized`,
    /// `internal`, ...), for the caller to report as it sees fit.
    pub fn engine_error(&self) -> Option<EngineError> {
        Some(match self.code.as_str() {
            "not_found" => EngineError::NotFound {
                entity: known_entity(self.entity.as_deref()),
                id: self.id.clone().unwrap_or_default(),
            },
            "invalid"
            | "bad_request"
            | "malformed_json"
            | "payload_too_large"
            | "unsupported_media_type" => EngineError::Invalid {
                field: self.field.clone().unwrap_or_else(|| "body".to_owned()),
                message: self.message.clone(),
            },
            "lease_lost" => EngineError::LeaseLost,
            "not_active" => EngineError::NotActive {
                outcome: self.outcome?,
            },
            "conflict" => EngineError::conflict(self.message.clone()),
            "unavailable" => EngineError::Unavailable {
                message: self.message.clone(),
            },
            _ => return None,
        })
    }
}

/// `EngineError::NotFound` names its entity with a `&'static str`.
fn known_entity(entity: Option<&str>) -> &'static str {
    match entity {
        Some("execution") => "execution",
        Some("flow") => "flow",
        Some("node") => "node",
        _ => "resource",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(err: EngineError) -> EngineError {
        let text = serde_json::to_string(&WireError::from_engine(&err)).unwrap_or_default();
        let wire: WireError = serde_json::from_str(&text).unwrap_or_default();
        wire.engine_error()
            .unwrap_or_else(|| EngineError::backend(format!("no kind for {}", wire.code)))
    }

    fn one_of_each() -> Vec<EngineError> {
        vec![
            EngineError::execution_not_found("0190"),
            EngineError::invalid("lane", "must not be empty"),
            EngineError::LeaseLost,
            EngineError::NotActive {
                outcome: Outcome::Cancelled,
            },
            EngineError::conflict("busy"),
            EngineError::Unavailable {
                message: "down".to_owned(),
            },
        ]
    }

    #[test]
    fn every_kind_survives_the_wire() {
        for (sent, expected) in one_of_each().into_iter().zip(one_of_each()) {
            let back = round_trip(sent);
            assert_eq!(back.kind(), expected.kind(), "{back:?}");
            assert_eq!(back.to_string(), expected.to_string());
            assert_eq!(back.field(), expected.field());
        }
    }

    /// Only the structured fields matter: the same answer with its message
    /// reworded maps to the same error.
    #[test]
    fn messages_are_never_parsed() {
        let mut wire = WireError::from_engine(&EngineError::NotActive {
            outcome: Outcome::Failed,
        });
        wire.message = "reworded entirely".to_owned();
        assert!(matches!(
            wire.engine_error(),
            Some(EngineError::NotActive {
                outcome: Outcome::Failed
            })
        ));
        let mut wire = WireError::from_engine(&EngineError::execution_not_found("abc"));
        wire.message = "gone".to_owned();
        assert!(matches!(
            wire.engine_error(),
            Some(EngineError::NotFound { entity: "execution", id }) if id == "abc"
        ));
        let mut wire = WireError::from_engine(&EngineError::invalid("lane", "too long"));
        wire.message = "too long".to_owned();
        assert!(matches!(
            wire.engine_error(),
            Some(EngineError::Invalid { field, message }) if field == "lane" && message == "too long"
        ));
    }

    #[test]
    fn backend_errors_do_not_leak_and_have_no_kind() {
        let wire = WireError::from_engine(&EngineError::backend("password=hunter2"));
        assert_eq!(wire.code, "internal");
        assert!(!wire.message.contains("hunter2"));
        assert!(wire.engine_error().is_none());
        assert!(WireError::new("unauthorized", "x").engine_error().is_none());
    }
}
