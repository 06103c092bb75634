//! How a client command fails: one line on stderr (the API's error JSON
//! with `--json`) and an exit code a script can branch on without reading
//! the message.
//!
//! | exit | meaning | `code` |
//! |---|---|---|
//! | 1 | any other error | the API's code, or `error` |
//! | 2 | bad command line (from the argument parser) | — |
//! | 3 | not found | `not_found` |
//! | 4 | invalid input (rejected locally or by the server) | `invalid` |
//! | 5 | conflict with the current state | `conflict`, `lease_lost`, `not_active` |
//! | 6 | server or backend unavailable (retry later) | `unavailable` |
//! | 7 | unauthorised (missing or wrong token) | `unauthorized` |

use std::fmt;
use std::process::ExitCode;

use ff_core::EngineError;
use ff_sdk::HttpError;
use serde::Serialize;

/// What kind of failure, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Other,
    NotFound,
    Invalid,
    Conflict,
    Unavailable,
    Unauthorized,
}

impl Class {
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Other => 1,
            Self::NotFound => 3,
            Self::Invalid => 4,
            Self::Conflict => 5,
            Self::Unavailable => 6,
            Self::Unauthorized => 7,
        }
    }
}

/// A classified failure, carried through `anyhow` to where it is printed.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    #[serde(skip)]
    pub class: Class,
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    pub fn new(class: Class, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            class,
            code: code.into(),
            message: message.into(),
            field: None,
        }
    }

    /// Bad input in `field`, found before anything was sent.
    pub fn invalid(field: &str, message: impl fmt::Display) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(Class::Invalid, "invalid", format!("{field}: {message}"))
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Class::NotFound, "not_found", message)
    }

    /// An SDK error, classified by its kind; `server` and `namespace` make
    /// the message actionable.
    pub fn from_engine(err: EngineError, server: &str, namespace: &str) -> Self {
        match err {
            EngineError::Unavailable { message } if message.starts_with("cannot reach") => {
                // The innermost cause says it best ("Connection refused").
                let cause = message.rsplit(": ").next().unwrap_or(&message);
                Self::new(
                    Class::Unavailable,
                    "unavailable",
                    format!(
                        "cannot reach the FlowFabric server at {server} ({cause}); is `ff serve` running? Set --server or FF_SERVER"
                    ),
                )
            }
            err @ EngineError::Unavailable { .. } => {
                Self::new(Class::Unavailable, "unavailable", err.to_string())
            }
            EngineError::NotFound { entity, id } => Self::not_found(format!(
                "{entity} {id} not found in namespace `{namespace}`"
            )),
            EngineError::Invalid { field, message } => Self {
                field: Some(field.clone()),
                ..Self::new(
                    Class::Invalid,
                    "invalid",
                    format!("invalid {field}: {message}"),
                )
            },
            err @ (EngineError::LeaseLost
            | EngineError::NotActive { .. }
            | EngineError::Conflict { .. }) => {
                Self::new(Class::Conflict, err.kind().code(), err.to_string())
            }
            EngineError::Backend(source) => match source.downcast_ref::<HttpError>() {
                Some(http) if http.status == 401 || http.code == "unauthorized" => Self::new(
                    Class::Unauthorized,
                    "unauthorized",
                    "the server wants a valid token: pass --token or set FF_API_TOKEN",
                ),
                Some(http) => Self::new(Class::Other, http.code.clone(), http.to_string()),
                None => Self::new(Class::Other, "backend", source.to_string()),
            },
            other => Self::new(Class::Other, other.kind().code(), other.to_string()),
        }
    }

    /// The failure inside `err`, or an unclassified one with its message
    /// (and the context chain) when it is none.
    pub fn of(err: &anyhow::Error) -> Self {
        let message = format!("{err:#}");
        match err.downcast_ref::<Failure>() {
            Some(failure) => Self {
                message,
                ..failure.clone()
            },
            None => Self::new(Class::Other, "error", message),
        }
    }

    /// Prints the failure on stderr, as JSON when `json`; returns the exit
    /// code.
    pub fn report(&self, json: bool) -> ExitCode {
        if json {
            match serde_json::to_string(self) {
                Ok(line) => eprintln!("{line}"),
                Err(_) => eprintln!("error: {}", self.message),
            }
        } else {
            eprintln!("error: {}", self.message);
        }
        ExitCode::from(self.class.exit_code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_distinct_exit_codes() {
        let of = |err: EngineError| Failure::from_engine(err, "http://x", "default");
        let not_found = of(EngineError::NotFound {
            entity: "execution",
            id: "e1".into(),
        });
        assert_eq!(
            (not_found.class.exit_code(), &*not_found.code),
            (3, "not_found")
        );
        let invalid = of(EngineError::invalid("lane", "bad"));
        assert_eq!(invalid.field.as_deref(), Some("lane"));
        assert_eq!(invalid.class.exit_code(), 4);
        let conflict = of(EngineError::LeaseLost);
        assert_eq!(
            (conflict.class.exit_code(), &*conflict.code),
            (5, "lease_lost")
        );
        let down = of(EngineError::Unavailable {
            message: "cannot reach http://x: Connection refused".into(),
        });
        assert_eq!(down.class.exit_code(), 6);
        assert!(
            down.message.contains("(Connection refused)"),
            "{}",
            down.message
        );
        let unauthorized = of(EngineError::backend(HttpError {
            status: 401,
            code: "unauthorized".into(),
            message: "no".into(),
        }));
        assert_eq!(unauthorized.class.exit_code(), 7);
        let json = serde_json::to_value(&invalid).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"code": "invalid", "message": "invalid lane: bad", "field": "lane"})
        );
    }
}
