//! The worker protocol: long-poll claims and the lease operations. A lease
//! operation is authorized by its handle: it must name the path's namespace
//! (404 otherwise), and its attempt, epoch and secret token fence it.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ff_core::cascade::NodesAdded;
use ff_core::flow::{EdgeSpec, NodeSpec};
use ff_core::{
    ClaimRequest, Claimed, CompleteResponse, FailResponse, JsonText, LeaseHandle, Renewed,
};
use serde::Deserialize;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, Path};
use crate::state::AppState;

/// A claim: lanes and capabilities, how many, and how long to wait.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    pub lanes: Vec<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default = "one")]
    pub n: u32,
    pub worker_id: String,
    /// Long-poll: wait up to this long for work (capped by the server).
    #[serde(default)]
    pub wait_ms: u64,
}

fn one() -> u32 {
    1
}

/// Claim up to `n` executions; 204 when none arrived within `wait_ms`, or
/// when the server is shutting down.
#[utoipa::path(post, path = "/v1/namespaces/{namespace}/claims", tag = "workers",
    params(("namespace" = String, Path)),
    request_body = ClaimBody,
    responses((status = 200, body = Vec<Claimed>), (status = 204), (status = 422, body = ErrorBody)))]
pub async fn claim(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<ClaimBody>,
) -> Result<Response, ApiError> {
    if state.is_draining() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let req = ClaimRequest::new(body.lanes, body.worker_id)
        .namespace(namespace)
        .capabilities(body.capabilities)
        .max(body.n);
    let wait = Duration::from_millis(body.wait_ms).min(state.config.max_claim_wait);
    let mut draining = state.draining.clone();
    let claimed = tokio::select! {
        claimed = state.engine.claim_wait(&req, wait) => claimed?,
        // A drain answers open long-polls at once; a claim in flight is
        // dropped before it commits or, if it committed, its lease expires.
        _ = draining.wait_for(|d| *d) => Vec::new(),
    };
    if claimed.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(Json(claimed).into_response())
}

/// A lease handle.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandleBody {
    pub handle: LeaseHandle,
}

/// Completion of a lease.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    pub handle: LeaseHandle,
    #[serde(default)]
    pub result: JsonText,
}

/// Failure of a lease.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailBody {
    pub handle: LeaseHandle,
    pub error: String,
    #[serde(default = "yes")]
    pub retryable: bool,
}

fn yes() -> bool {
    true
}

/// Nodes a running flow member adds to its flow.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddNodesBody {
    pub handle: LeaseHandle,
    pub nodes: Vec<NodeSpec>,
    #[serde(default)]
    pub edges: Vec<EdgeSpec>,
}

/// Extend a lease.
#[utoipa::path(post, path = "/v1/namespaces/{namespace}/leases/renew", tag = "workers",
    params(("namespace" = String, Path)), request_body = HandleBody,
    responses((status = 200, body = Renewed), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn renew(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<HandleBody>,
) -> Result<Json<Renewed>, ApiError> {
    Ok(Json(
        state
            .engine
            .renew(body.handle.in_namespace(&namespace)?)
            .await?,
    ))
}

/// Hand an execution back without using up its attempt.
#[utoipa::path(post, path = "/v1/namespaces/{namespace}/leases/release", tag = "workers",
    params(("namespace" = String, Path)), request_body = HandleBody,
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn release(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<HandleBody>,
) -> Result<StatusCode, ApiError> {
    state
        .engine
        .release(body.handle.in_namespace(&namespace)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Complete with a result.
#[utoipa::path(post, path = "/v1/namespaces/{namespace}/leases/complete", tag = "workers",
    params(("namespace" = String, Path)), request_body = CompleteBody,
    responses((status = 200, body = CompleteResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn complete(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<CompleteBody>,
) -> Result<Json<CompleteResponse>, ApiError> {
    Ok(Json(
        state
            .engine
            .complete(body.handle.in_namespace(&namespace)?, body.result)
            .await?,
    ))
}

/// Fail, retryably or not.
#[utoipa::path(post, path = "/v1/namespaces/{namespace}/leases/fail", tag = "workers",
    params(("namespace" = String, Path)), request_body = FailBody,
    responses((status = 200, body = FailResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn fail(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<FailBody>,
) -> Result<Json<FailResponse>, ApiError> {
    let failure = ff_core::Failure {
        error: body.error,
        retryable: body.retryable,
    };
    Ok(Json(
        state
            .engine
            .fail(body.handle.in_namespace(&namespace)?, failure)
            .await?,
    ))
}

/// Add nodes to the flow of the running member holding `handle`.
#[utoipa::path(post, path = "/v1/namespaces/{namespace}/leases/add-nodes", tag = "workers",
    params(("namespace" = String, Path)), request_body = AddNodesBody,
    responses((status = 200, body = NodesAdded), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_nodes(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<AddNodesBody>,
) -> Result<Json<NodesAdded>, ApiError> {
    Ok(Json(
        state
            .engine
            .add_nodes(
                body.handle.in_namespace(&namespace)?,
                body.nodes,
                body.edges,
            )
            .await?,
    ))
}
