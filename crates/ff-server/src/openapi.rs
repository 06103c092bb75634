//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::OpenApi;

use crate::routes::{events, executions, flows, health, workers};

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "FlowFabric", description = "Durable executions and flows over HTTP."),
    paths(
        executions::submit,
        executions::submit_batch,
        executions::list,
        executions::get,
        executions::result,
        executions::cancel,
        executions::requeue,
        executions::counts,
        flows::create,
        flows::list,
        flows::get,
        flows::cancel,
        workers::claim,
        workers::renew,
        workers::release,
        workers::complete,
        workers::fail,
        workers::add_nodes,
        events::completions,
        events::execution,
        health::healthz,
        health::readyz,
        health::metrics,
    ),
    tags(
        (name = "executions", description = "Submit and steer executions"),
        (name = "flows", description = "DAGs of executions"),
        (name = "workers", description = "The worker protocol: claim, renew, complete, fail"),
        (name = "events", description = "Server-sent events"),
        (name = "ops", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;
