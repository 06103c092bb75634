//! Bearer-token authentication: `/v1/*` needs the API token, `/metrics`
//! the metrics token (or the API token when no metrics token is set).

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// Rejects a request without the API token (when one is set).
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    guard(state.config.api_token.as_deref(), req, next).await
}

/// Rejects a `/metrics` request without the metrics token, or without the
/// API token when only that is set: the metrics name every namespace and
/// lane with their counts.
pub async fn require_metrics_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let expected = state
        .config
        .metrics_token
        .as_deref()
        .or(state.config.api_token.as_deref());
    guard(expected, req, next).await
}

async fn guard(expected: Option<&str>, req: Request, next: Next) -> Response {
    match expected {
        None => next.run(req).await,
        Some(expected) if token_matches(bearer(req.headers()), expected) => next.run(req).await,
        Some(_) => ApiError::unauthorized().into_response(),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Compares the SHA-256 digests of the two tokens without stopping at the
/// first difference: both digests have the same length whatever was
/// presented, so the time taken reveals neither the token's length nor how
/// much of a guess was right.
fn token_matches(presented: Option<&str>, expected: &str) -> bool {
    let presented = Sha256::digest(presented.unwrap_or_default().as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    let diff = presented
        .iter()
        .zip(expected.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn compares_whole_tokens() {
        assert!(token_matches(Some("secret"), "secret"));
        assert!(!token_matches(Some("secreT"), "secret"));
        assert!(!token_matches(Some("secret2"), "secret"));
        assert!(!token_matches(Some("secre"), "secret"));
        assert!(!token_matches(Some(""), "secret"));
        assert!(!token_matches(None, "secret"));
    }
}
