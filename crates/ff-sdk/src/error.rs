//! Errors: every SDK call returns [`ff_core::EngineError`], whatever the
//! transport. An HTTP answer whose code has no `EngineError` kind (401, a
//! 500) arrives as `EngineError::Backend` wrapping an [`HttpError`].

/// An HTTP error answer that maps to no other `EngineError` kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the server answered {status} {code}: {message}")]
pub struct HttpError {
    pub status: u16,
    /// The API's stable code, e.g. `unauthorized`, `internal`.
    pub code: String,
    pub message: String,
}
