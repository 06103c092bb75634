//! The one mapping from errors to HTTP: a stable `code`, a human `message`,
//! the offending `field` when there is one. A 500 never echoes internals.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ff_core::{EngineError, ErrorKind};
use serde::Serialize;

/// The JSON body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable: `bad_request`, `malformed_json`,
    /// `invalid`, `not_found`, `method_not_allowed`, `lease_lost`,
    /// `not_active`, `conflict`, `payload_too_large`,
    /// `unsupported_media_type`, `unauthorized`, `unavailable`, `internal`.
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
                field: None,
            },
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn malformed_json(err: &serde_json::Error) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("malformed JSON: {err}"),
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be sent with content-type: application/json",
        )
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut err = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message);
        err.body.field = Some(field.into());
        err
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        let kind = err.kind();
        let (status, code) = match kind {
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, kind.code()),
            ErrorKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, kind.code()),
            ErrorKind::LeaseLost | ErrorKind::NotActive | ErrorKind::Conflict => {
                (StatusCode::CONFLICT, kind.code())
            }
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, kind.code()),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %err, "internal error");
            "internal error; see the server log".to_owned()
        } else {
            err.to_string()
        };
        let mut api = Self::new(status, code, message);
        api.body.field = err.field().map(str::to_owned);
        api
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// The router's fallback: no route has this path.
pub async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// The answer for a known path asked with a method it does not take; the
/// router adds the `Allow` header.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; see the Allow header",
    )
}

/// A JSON answer with a status.
pub fn reply<T: Serialize>(status: StatusCode, body: T) -> Response {
    (status, Json(body)).into_response()
}
