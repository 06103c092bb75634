//! `EngineError`: the one error type of every backend operation.

use std::error::Error as StdError;

use crate::state::Outcome;

/// Errors of every FlowFabric operation, classified by meaning so callers
/// branch on [`EngineError::kind`], never on messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The named entity does not exist.
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    /// Bad input; `field` names the offending field.
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    /// The lease handle is not the current one, or the lease expired.
    #[error("lease lost: the handle is not the current lease of this execution")]
    LeaseLost,
    /// Another outcome was recorded while the caller held the lease.
    #[error("execution is no longer active: it was {outcome}")]
    NotActive { outcome: Outcome },
    /// The request conflicts with the current state.
    #[error("conflict: {message}")]
    Conflict { message: String },
    /// The backend cannot be reached right now; the call may be retried.
    #[error("backend unavailable: {message}")]
    Unavailable { message: String },
    /// An unexpected backend failure.
    #[error("backend error: {0}")]
    Backend(#[source] Box<dyn StdError + Send + Sync>),
}

/// The portable classification of an [`EngineError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    NotFound,
    Invalid,
    LeaseLost,
    NotActive,
    Conflict,
    Unavailable,
    Backend,
}

impl ErrorKind {
    /// A stable, machine-readable code (used by the HTTP API and the CLI).
    pub fn code(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Invalid => "invalid",
            Self::LeaseLost => "lease_lost",
            Self::NotActive => "not_active",
            Self::Conflict => "conflict",
            Self::Unavailable => "unavailable",
            Self::Backend => "backend",
        }
    }
}

impl EngineError {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::Invalid { .. } => ErrorKind::Invalid,
            Self::LeaseLost => ErrorKind::LeaseLost,
            Self::NotActive { .. } => ErrorKind::NotActive,
            Self::Conflict { .. } => ErrorKind::Conflict,
            Self::Unavailable { .. } => ErrorKind::Unavailable,
            Self::Backend(_) => ErrorKind::Backend,
        }
    }

    /// `Invalid` for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// `Conflict` with a message.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict {
            message: message.into(),
        }
    }

    /// `NotFound` for an execution.
    pub fn execution_not_found(id: impl ToString) -> Self {
        Self::NotFound {
            entity: "execution",
            id: id.to_string(),
        }
    }

    /// `Backend` wrapping any error.
    pub fn backend(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Backend(source.into())
    }

    /// The same failure for another caller of one shared commit:
    /// `Unavailable` stays retryable, anything else becomes a `Backend`
    /// failure with the same message (a backend's source error cannot be
    /// cloned).
    pub fn for_another_caller(&self) -> Self {
        match self {
            Self::Unavailable { message } => Self::Unavailable {
                message: message.clone(),
            },
            Self::Backend(source) => Self::backend(source.to_string()),
            other => Self::backend(other.to_string()),
        }
    }

    /// The offending field of an `Invalid` error.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Prefixes the field of an `Invalid` error, e.g. `requests[3].lane`.
    pub fn in_field(self, prefix: &str) -> Self {
        match self {
            Self::Invalid { field, message } => Self::Invalid {
                field: format!("{prefix}.{field}"),
                message,
            },
            other => other,
        }
    }
}
