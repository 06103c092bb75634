//! The one mapping from errors to HTTP: a stable `code`, a human `message`,
//! the offending `field` when there is one. A 500 never echoes internals.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ff_core::{EngineError, ErrorKind};
use serde::Serialize;

/// The JSON body of every error answer: `ff-core`'s wire error, which the
/// SDK reads back by its code and fields.
pub use ff_core::WireError as ErrorBody;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    /// Boxed so that a `Result<_, ApiError>` stays small.
    body: Box<ErrorBody>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: Box::new(ErrorBody::new(code, message)),
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
        let status = match err.kind() {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::LeaseLost | ErrorKind::NotActive | ErrorKind::Conflict => {
                StatusCode::CONFLICT
            }
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => {
                tracing::error!(error = %err, "internal error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Self {
            status,
            body: Box::new(ErrorBody::from_engine(&err)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(*self.body)).into_response();
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
