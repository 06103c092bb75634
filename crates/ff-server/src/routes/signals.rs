//! Waitpoints, suspend and signals. A handler creates waitpoints and
//! suspends with its lease handle; an outside party signals with a
//! waitpoint token alone (`POST /v1/signals/{token}`, no API token: the
//! token authorises exactly its waitpoint); an operator signals by
//! execution id and waitpoint key under the namespace.

use axum::extract::State;
use axum::Json;
use ff_core::suspension::{
    ResumeCondition, SignalRequest, SignalResponse, SignalsView, SuspendRequest, SuspendResponse,
    TimeoutPolicy, WaitpointGrant, WaitpointRequest,
};
use ff_core::LeaseHandle;
use serde::Deserialize;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, Path};
use crate::routes::executions::load;
use crate::state::AppState;

/// A waitpoint a running handler creates before it suspends.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitpointBody {
    pub handle: LeaseHandle,
    pub key: String,
    /// How long the waitpoint and its token live; default seven days.
    #[serde(default)]
    pub ttl_ms: Option<u64>,
}

/// A suspension of the running attempt holding `handle`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendBody {
    pub handle: LeaseHandle,
    /// A repeat with the same handle and key answers as the first call.
    pub key: String,
    pub waitpoints: Vec<String>,
    #[serde(default)]
    pub condition: Option<ResumeCondition>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub on_timeout: TimeoutPolicy,
    #[serde(default)]
    pub ttl_ms: Option<u64>,
}

/// Create a waitpoint (or get the one this attempt created) and its token.
#[utoipa::path(operation_id = "create_waitpoint", post, path = "/v1/namespaces/{namespace}/leases/waitpoint", tag = "signals",
    params(("namespace" = String, Path)), request_body = WaitpointBody,
    responses((status = 200, body = WaitpointGrant), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_waitpoint(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<WaitpointBody>,
) -> Result<Json<WaitpointGrant>, ApiError> {
    let req = WaitpointRequest {
        key: body.key,
        ttl_ms: body.ttl_ms,
    };
    Ok(Json(
        state
            .engine
            .create_waitpoint(body.handle.in_namespace(&namespace)?, &req)
            .await?,
    ))
}

/// Suspend on waitpoints and release the lease, or, when signals already
/// delivered satisfy the condition, keep the lease and get them.
#[utoipa::path(operation_id = "suspend", post, path = "/v1/namespaces/{namespace}/leases/suspend", tag = "signals",
    params(("namespace" = String, Path)), request_body = SuspendBody,
    responses((status = 200, body = SuspendResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn suspend(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<SuspendBody>,
) -> Result<Json<SuspendResponse>, ApiError> {
    let req = SuspendRequest {
        key: body.key,
        waitpoints: body.waitpoints,
        condition: body.condition.unwrap_or(ResumeCondition::Any),
        timeout_ms: body.timeout_ms,
        on_timeout: body.on_timeout,
        ttl_ms: body.ttl_ms,
    };
    Ok(Json(
        state
            .engine
            .suspend(body.handle.in_namespace(&namespace)?, &req)
            .await?,
    ))
}

/// Signal a waitpoint with its token. Needs no API token: the waitpoint
/// token authorises exactly one waitpoint. A repeated idempotency key
/// answers with the first signal's id and `duplicate: true`.
#[utoipa::path(operation_id = "signal_by_token", post, path = "/v1/signals/{token}", tag = "signals",
    params(("token" = String, Path, description = "The waitpoint token")),
    request_body = SignalRequest,
    responses((status = 200, body = SignalResponse), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn signal_by_token(
    State(state): State<AppState>,
    Path(token): Path<String>,
    JsonBody(req): JsonBody<SignalRequest>,
) -> Result<Json<SignalResponse>, ApiError> {
    Ok(Json(state.engine.signal_by_token(&token, &req).await?))
}

/// Signal waitpoint `key` of an execution (an operator's call).
#[utoipa::path(operation_id = "signal_waitpoint", post, path = "/v1/namespaces/{namespace}/executions/{id}/waitpoints/{key}/signals",
    tag = "signals",
    params(("namespace" = String, Path), ("id" = String, Path), ("key" = String, Path)),
    request_body = SignalRequest,
    responses((status = 200, body = SignalResponse), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn signal(
    State(state): State<AppState>,
    Path((namespace, id, key)): Path<(String, String, String)>,
    JsonBody(req): JsonBody<SignalRequest>,
) -> Result<Json<SignalResponse>, ApiError> {
    let id = crate::routes::parse_id(&id)?;
    Ok(Json(state.engine.signal(&namespace, id, &key, &req).await?))
}

/// An execution's waitpoints, signals and suspensions (tokens are never
/// read back).
#[utoipa::path(operation_id = "list_signals", get, path = "/v1/namespaces/{namespace}/executions/{id}/signals", tag = "signals",
    params(("namespace" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = SignalsView), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Path((namespace, id)): Path<(String, String)>,
) -> Result<Json<SignalsView>, ApiError> {
    let wait = load(&state, &namespace, &id)
        .await?
        .wait
        .unwrap_or_default();
    Ok(Json(SignalsView {
        waitpoints: wait.waitpoints,
        signals: wait.signals,
        suspensions: wait.suspensions,
    }))
}
