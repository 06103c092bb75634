//! `/v1/namespaces/{namespace}/flows`: create, read, list, cancel.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use ff_core::cascade::FlowCancelResponse;
use ff_core::flow::{FlowCreated, FlowFilter, FlowSpec, FlowSummary, FlowView};
use ff_core::{FlowId, Page};
use serde::Deserialize;

use crate::error::{reply, ApiError, ErrorBody};
use crate::extract::{JsonBody, Path, Query};
use crate::routes::parse_id;
use crate::state::AppState;

async fn load(state: &AppState, namespace: &str, id: &str) -> Result<FlowView, ApiError> {
    let id: FlowId = parse_id(id)?;
    let flow = state.engine.get_flow(id).await?;
    if flow.namespace != namespace {
        return Err(ApiError::not_found("flow"));
    }
    Ok(flow)
}

/// Create a flow atomically. 201 when created, 200 for a known idempotency key.
#[utoipa::path(operation_id = "create_flow", post, path = "/v1/namespaces/{namespace}/flows", tag = "flows",
    params(("namespace" = String, Path)),
    request_body = FlowSpec,
    responses((status = 201, body = FlowCreated), (status = 200, body = FlowCreated),
        (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    JsonBody(mut spec): JsonBody<FlowSpec>,
) -> Result<Response, ApiError> {
    if spec.namespace.as_deref().is_some_and(|ns| ns != namespace) {
        return Err(ApiError::invalid(
            "namespace",
            "must match the path's namespace",
        ));
    }
    spec.namespace = Some(namespace);
    let created = state.engine.create_flow(spec).await?;
    let status = if created.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(reply(status, created))
}

/// Query parameters of a flow list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FlowQuery {
    pub state: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// List flows in creation order.
#[utoipa::path(operation_id = "list_flows", get, path = "/v1/namespaces/{namespace}/flows", tag = "flows",
    params(("namespace" = String, Path), FlowQuery),
    responses((status = 200, body = Page<FlowSummary>)))]
pub async fn list(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    Query(query): Query<FlowQuery>,
) -> Result<Json<Page<FlowSummary>>, ApiError> {
    let filter = FlowFilter {
        namespace,
        state: query.state.map(|s| s.parse()).transpose()?,
        limit: query.limit.unwrap_or(ff_core::reads::DEFAULT_PAGE_SIZE),
        cursor: query.cursor,
    };
    Ok(Json(state.engine.list_flows(&filter).await?))
}

/// A flow with its nodes, edges and state.
#[utoipa::path(operation_id = "get_flow", get, path = "/v1/namespaces/{namespace}/flows/{id}", tag = "flows",
    params(("namespace" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = FlowView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path((namespace, id)): Path<(String, String)>,
) -> Result<Json<FlowView>, ApiError> {
    Ok(Json(load(&state, &namespace, &id).await?))
}

/// Cancel a flow and every unfinished member in one step.
#[utoipa::path(operation_id = "cancel_flow", post, path = "/v1/namespaces/{namespace}/flows/{id}/cancel", tag = "flows",
    params(("namespace" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = FlowCancelResponse), (status = 404, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    Path((namespace, id)): Path<(String, String)>,
) -> Result<Json<FlowCancelResponse>, ApiError> {
    let flow = load(&state, &namespace, &id).await?;
    Ok(Json(state.engine.cancel_flow(flow.id).await?))
}
