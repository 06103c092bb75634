//! `/v1/namespaces/{namespace}/executions`: submit, batch, read, cancel,
//! requeue, results and counts.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use ff_core::explain::Explanation;
use ff_core::{
    CancelResponse, Execution, ExecutionId, JsonText, LaneStateCount, ListFilter, Outcome, Page,
    State as ExecState, SubmitRequest, Submitted,
};
use serde::{Deserialize, Serialize};

use crate::error::{reply, ApiError, ErrorBody};
use crate::extract::{JsonBody, Path, Query};
use crate::routes::{namespaced, parse_id};
use crate::state::AppState;

/// Loads an execution, answering 404 when it belongs to another namespace.
pub(crate) async fn load(
    state: &AppState,
    namespace: &str,
    id: &str,
) -> Result<Execution, ApiError> {
    let id: ExecutionId = parse_id(id)?;
    let exec = state.engine.get_execution(id).await?;
    if exec.namespace != namespace {
        return Err(ApiError::not_found("execution"));
    }
    Ok(exec)
}

/// Submit one execution. 201 when created, 200 when an idempotency key
/// matched an existing one.
#[utoipa::path(operation_id = "submit_execution", post, path = "/v1/namespaces/{namespace}/executions", tag = "executions",
    params(("namespace" = String, Path)),
    request_body = SubmitRequest,
    responses((status = 201, body = Submitted), (status = 200, body = Submitted),
        (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn submit(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    JsonBody(req): JsonBody<SubmitRequest>,
) -> Result<Response, ApiError> {
    let req = namespaced(req, &namespace)?;
    let submitted = state.engine.submit(req).await?;
    let status = if submitted.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(reply(status, submitted))
}

/// A batch of submissions.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    pub requests: Vec<SubmitRequest>,
}

/// Submit up to 1,000 executions atomically.
#[utoipa::path(operation_id = "submit_batch", post, path = "/v1/namespaces/{namespace}/executions/batch", tag = "executions",
    params(("namespace" = String, Path)),
    request_body = BatchRequest,
    responses((status = 200, body = Vec<Submitted>), (status = 422, body = ErrorBody)))]
pub async fn submit_batch(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    JsonBody(batch): JsonBody<BatchRequest>,
) -> Result<Json<Vec<Submitted>>, ApiError> {
    let reqs = batch
        .requests
        .into_iter()
        .enumerate()
        .map(|(i, req)| {
            namespaced(req, &namespace).map_err(|_| {
                ApiError::invalid(
                    format!("requests[{i}].namespace"),
                    "must match the path's namespace",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(state.engine.submit_batch(reqs).await?))
}

/// Query parameters of a list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub state: Option<String>,
    pub lane: Option<String>,
    pub kind: Option<String>,
    /// `key:value`
    pub tag: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// List executions, filtered, in creation order, with cursor pagination.
#[utoipa::path(operation_id = "list_executions", get, path = "/v1/namespaces/{namespace}/executions", tag = "executions",
    params(("namespace" = String, Path), ListQuery),
    responses((status = 200, body = Page<Execution>), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<Execution>>, ApiError> {
    let tag = match query.tag {
        Some(tag) => Some(
            tag.split_once(':')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| ApiError::invalid("tag", "expected key:value"))?,
        ),
        None => None,
    };
    let filter = ListFilter {
        namespace,
        state: query.state.map(|s| s.parse()).transpose()?,
        lane: query.lane,
        kind: query.kind,
        tag,
        limit: query.limit.unwrap_or(ff_core::reads::DEFAULT_PAGE_SIZE),
        cursor: query.cursor,
    };
    Ok(Json(state.engine.list_executions(&filter).await?))
}

/// One execution with its attempts.
#[utoipa::path(operation_id = "get_execution", get, path = "/v1/namespaces/{namespace}/executions/{id}", tag = "executions",
    params(("namespace" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Execution), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path((namespace, id)): Path<(String, String)>,
) -> Result<Json<Execution>, ApiError> {
    Ok(Json(load(&state, &namespace, &id).await?))
}

/// An execution's result (or error) once terminal.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResultBody {
    pub state: ExecState,
    pub outcome: Option<Outcome>,
    pub result: Option<JsonText>,
    pub error: Option<String>,
}

/// The result of an execution; `outcome` is null until it is terminal.
#[utoipa::path(operation_id = "get_result", get, path = "/v1/namespaces/{namespace}/executions/{id}/result", tag = "executions",
    params(("namespace" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = ResultBody), (status = 404, body = ErrorBody)))]
pub async fn result(
    State(state): State<AppState>,
    Path((namespace, id)): Path<(String, String)>,
) -> Result<Json<ResultBody>, ApiError> {
    let exec = load(&state, &namespace, &id).await?;
    Ok(Json(ResultBody {
        state: exec.state,
        outcome: exec.outcome(),
        result: exec.result,
        error: exec.error,
    }))
}

/// What holds an execution that is not running: its `run_at`, a retry
/// backoff, unfinished parents, a suspension, or its place in the lane.
#[utoipa::path(operation_id = "explain_execution", get, path = "/v1/namespaces/{namespace}/executions/{id}/why", tag = "executions",
    params(("namespace" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Explanation), (status = 404, body = ErrorBody)))]
pub async fn why(
    State(state): State<AppState>,
    Path((namespace, id)): Path<(String, String)>,
) -> Result<Json<Explanation>, ApiError> {
    let id: ExecutionId = parse_id(&id)?;
    Ok(Json(
        ff_core::explain::why(&*state.engine, &namespace, id).await?,
    ))
}

/// Cancel an execution; on a terminal one, its outcome with `changed: false`.
#[utoipa::path(operation_id = "cancel_execution", post, path = "/v1/namespaces/{namespace}/executions/{id}/cancel", tag = "executions",
    params(("namespace" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = CancelResponse), (status = 404, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    Path((namespace, id)): Path<(String, String)>,
) -> Result<Json<CancelResponse>, ApiError> {
    let exec = load(&state, &namespace, &id).await?;
    Ok(Json(state.engine.cancel(exec.id).await?))
}

/// Give a failed solo execution one more attempt.
#[utoipa::path(operation_id = "requeue_execution", post, path = "/v1/namespaces/{namespace}/executions/{id}/requeue", tag = "executions",
    params(("namespace" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn requeue(
    State(state): State<AppState>,
    Path((namespace, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let exec = load(&state, &namespace, &id).await?;
    state.engine.requeue(exec.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Executions per lane and state.
#[utoipa::path(operation_id = "count_by_lane_and_state", get, path = "/v1/namespaces/{namespace}/counts", tag = "executions",
    params(("namespace" = String, Path)),
    responses((status = 200, body = Vec<LaneStateCount>)))]
pub async fn counts(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
) -> Result<Json<Vec<LaneStateCount>>, ApiError> {
    Ok(Json(
        state.engine.count_by_lane_and_state(&namespace).await?,
    ))
}
