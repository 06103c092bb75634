//! The router: every route, the middleware, and the helpers handlers share.

pub mod events;
pub mod executions;
pub mod flows;
pub mod health;
pub mod limits;
pub mod signals;
pub mod workers;

use std::collections::HashMap;
use std::str::FromStr;

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use ff_core::{EngineError, Limits, SubmitRequest};

use crate::auth::{require_metrics_token, require_token};
use crate::error::{method_not_allowed, no_route, ApiError};
use crate::extract::Path;
use crate::metrics::track;
use crate::state::AppState;

/// Builds the whole API.
pub fn router(state: AppState) -> Router {
    let ns = "/v1/namespaces/{namespace}";
    let api = Router::new()
        .route(
            &format!("{ns}/executions"),
            post(executions::submit).get(executions::list),
        )
        .route(
            &format!("{ns}/executions/batch"),
            post(executions::submit_batch),
        )
        .route(&format!("{ns}/executions/{{id}}"), get(executions::get))
        .route(
            &format!("{ns}/executions/{{id}}/result"),
            get(executions::result),
        )
        .route(&format!("{ns}/executions/{{id}}/why"), get(executions::why))
        .route(
            &format!("{ns}/executions/{{id}}/cancel"),
            post(executions::cancel),
        )
        .route(
            &format!("{ns}/executions/{{id}}/requeue"),
            post(executions::requeue),
        )
        .route(
            &format!("{ns}/executions/{{id}}/events"),
            get(events::execution),
        )
        .route(&format!("{ns}/counts"), get(executions::counts))
        .route(&format!("{ns}/flows"), post(flows::create).get(flows::list))
        .route(&format!("{ns}/flows/{{id}}"), get(flows::get))
        .route(&format!("{ns}/flows/{{id}}/cancel"), post(flows::cancel))
        .route(&format!("{ns}/claims"), post(workers::claim))
        .route(&format!("{ns}/leases/renew"), post(workers::renew))
        .route(&format!("{ns}/leases/release"), post(workers::release))
        .route(&format!("{ns}/leases/complete"), post(workers::complete))
        .route(&format!("{ns}/leases/fail"), post(workers::fail))
        .route(&format!("{ns}/leases/add-nodes"), post(workers::add_nodes))
        .route(
            &format!("{ns}/leases/waitpoint"),
            post(signals::create_waitpoint),
        )
        .route(&format!("{ns}/leases/suspend"), post(signals::suspend))
        .route(
            &format!("{ns}/executions/{{id}}/waitpoints/{{key}}/signals"),
            post(signals::signal),
        )
        .route(
            &format!("{ns}/executions/{{id}}/signals"),
            get(signals::list),
        )
        .route(&format!("{ns}/policies"), get(limits::list))
        .route(
            &format!("{ns}/policies/{{name}}"),
            put(limits::put).delete(limits::delete),
        )
        .route(&format!("{ns}/budgets/{{name}}"), get(limits::budget))
        .route(&format!("{ns}/leases/usage"), post(limits::report_usage))
        .route(&format!("{ns}/events"), get(events::completions))
        .route_layer(middleware::from_fn(check_namespace))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(api)
        // The waitpoint token is the credential: no API token here.
        .route("/v1/signals/{token}", post(signals::signal_by_token))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(
            "/metrics",
            get(health::metrics).route_layer(middleware::from_fn_with_state(
                state.clone(),
                require_metrics_token,
            )),
        )
        .route("/openapi.json", get(health::openapi))
        .route_layer(middleware::from_fn_with_state(state.clone(), track))
        // Registered after every route: it applies to the routes present.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

/// Refuses a path whose namespace is not a valid name, whatever the route
/// does with it, so reads and writes agree on what a namespace is.
async fn check_namespace(
    Path(params): Path<HashMap<String, String>>,
    req: Request,
    next: Next,
) -> Response {
    match params.get("namespace") {
        Some(ns) => match Limits::default().check_name("namespace", ns) {
            Ok(()) => next.run(req).await,
            Err(err) => ApiError::from(err).into_response(),
        },
        None => next.run(req).await,
    }
}

/// Puts a request in the path's namespace; a body naming another is refused.
pub(crate) fn namespaced(
    mut req: SubmitRequest,
    namespace: &str,
) -> Result<SubmitRequest, ApiError> {
    if req.namespace.as_deref().is_some_and(|ns| ns != namespace) {
        return Err(ApiError::invalid(
            "namespace",
            "must match the path's namespace",
        ));
    }
    req.namespace = Some(namespace.to_owned());
    Ok(req)
}

/// Parses an id from the path; a malformed one is simply not found.
pub(crate) fn parse_id<T: FromStr<Err = EngineError>>(id: &str) -> Result<T, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("id"))
}
