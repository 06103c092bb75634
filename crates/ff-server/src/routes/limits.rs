//! Flow-control policies and budgets: a namespace's named policies read,
//! set and removed; a budget as it stands; and the worker's usage report,
//! with its lease handle.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ff_core::flow_control::{BudgetStatus, Policy, PolicySpec, UsageReport};
use ff_core::LeaseHandle;
use serde::Deserialize;
use std::collections::BTreeMap;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, Path};
use crate::state::AppState;

/// What the running attempt holding `handle` spent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBody {
    pub handle: LeaseHandle,
    /// A second report with the same key changes nothing.
    pub dedup_key: String,
    /// Amount per dimension, e.g. `{"tokens": 1200, "usd_cents": 3}`.
    pub amounts: BTreeMap<String, u64>,
}

/// The namespace's policies, by name.
#[utoipa::path(operation_id = "list_policies", get, path = "/v1/namespaces/{namespace}/policies", tag = "limits",
    params(("namespace" = String, Path)),
    responses((status = 200, body = Vec<Policy>)))]
pub async fn list(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
) -> Result<Json<Vec<Policy>>, ApiError> {
    Ok(Json(state.engine.policies(&namespace).await?))
}

/// Create policy `name` or replace its spec; the next claim applies it.
#[utoipa::path(operation_id = "put_policy", put, path = "/v1/namespaces/{namespace}/policies/{name}", tag = "limits",
    params(("namespace" = String, Path), ("name" = String, Path)), request_body = PolicySpec,
    responses((status = 200, body = Policy), (status = 422, body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Path((namespace, name)): Path<(String, String)>,
    JsonBody(spec): JsonBody<PolicySpec>,
) -> Result<Json<Policy>, ApiError> {
    Ok(Json(
        state.engine.put_policy(&namespace, &name, spec).await?,
    ))
}

/// Remove policy `name` (and a budget's usage).
#[utoipa::path(operation_id = "delete_policy", delete, path = "/v1/namespaces/{namespace}/policies/{name}", tag = "limits",
    params(("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if state.engine.delete_policy(&namespace, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("policy"))
    }
}

/// Budget policy `name` as it stands: usage, what remains, any breach.
#[utoipa::path(operation_id = "get_budget", get, path = "/v1/namespaces/{namespace}/budgets/{name}", tag = "limits",
    params(("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = BudgetStatus), (status = 404, body = ErrorBody)))]
pub async fn budget(
    State(state): State<AppState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<BudgetStatus>, ApiError> {
    Ok(Json(state.engine.budget(&namespace, &name).await?))
}

/// Report what the running attempt spent, against every budget of its
/// fairness key; the budgets as they now stand.
#[utoipa::path(operation_id = "report_usage", post, path = "/v1/namespaces/{namespace}/leases/usage", tag = "limits",
    params(("namespace" = String, Path)), request_body = UsageBody,
    responses((status = 200, body = Vec<BudgetStatus>), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn report_usage(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<UsageBody>,
) -> Result<Json<Vec<BudgetStatus>>, ApiError> {
    let report = UsageReport {
        dedup_key: body.dedup_key,
        amounts: body.amounts,
    };
    Ok(Json(
        state
            .engine
            .report_usage(body.handle.in_namespace(&namespace)?, &report)
            .await?,
    ))
}
