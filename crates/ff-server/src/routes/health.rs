//! Liveness, readiness, metrics and the OpenAPI document.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::state::AppState;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// How long readiness waits for the backend: a probe must answer promptly
/// even when the backend does not.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// The backend answers and the server is not draining.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200), (status = 503)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response();
    }
    // One keyed read of an id that exists nowhere: a round trip to the
    // backend whose cost does not grow with the data, answered `NotFound`.
    let probe = state.engine.get_execution(ff_core::ExecutionId::new());
    let error = match tokio::time::timeout(READY_TIMEOUT, probe).await {
        Ok(Ok(_)) => return (StatusCode::OK, "ready").into_response(),
        Ok(Err(err)) if err.kind() == ff_core::ErrorKind::NotFound => {
            return (StatusCode::OK, "ready").into_response()
        }
        Ok(Err(err)) => err.to_string(),
        Err(_) => format!("no answer within {READY_TIMEOUT:?}"),
    };
    tracing::warn!(%error, "not ready");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        "backend unavailable",
    )
        .into_response()
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render(&*state.engine).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// This API's OpenAPI 3 document.
pub async fn openapi() -> Json<&'static serde_json::Value> {
    Json(crate::openapi::document())
}
