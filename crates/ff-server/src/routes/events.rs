//! Server-sent events: the namespace's completions, and one execution's
//! state until it ends. Best-effort, like the completion stream behind them.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};

use crate::error::ApiError;
use crate::extract::Path;
use crate::routes::executions::load;
use crate::state::AppState;

fn json_event(name: &'static str, body: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(body)
        .unwrap_or_else(|_| Event::default().event(name))
}

/// Every completion (terminal transition) in the namespace, as `completion`
/// events carrying the outbox payload.
#[utoipa::path(operation_id = "stream_completions", get, path = "/v1/namespaces/{namespace}/events", tag = "events",
    params(("namespace" = String, Path)),
    responses((status = 200, description = "`completion` events", content_type = "text/event-stream", body = String)))]
pub async fn completions(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let stream = state.completions.subscribe_completions().await?;
    let events = stream
        .filter(move |p| futures::future::ready(p.namespace == namespace))
        .map(|p| Ok(json_event("completion", &p)));
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// One execution: a `state` event now, then a `completion` event when it
/// ends, then the stream closes.
#[utoipa::path(operation_id = "stream_execution_events", get, path = "/v1/namespaces/{namespace}/executions/{id}/events", tag = "events",
    params(("namespace" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "A `state` event, then a `completion` event", content_type = "text/event-stream", body = String)))]
pub async fn execution(
    State(state): State<AppState>,
    Path((namespace, id)): Path<(String, String)>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // Subscribe before reading, so an end between the two is not missed.
    let completions = state.completions.subscribe_completions().await?;
    let exec = load(&state, &namespace, &id).await?;
    let id = exec.id;
    let first = json_event("state", &exec);
    let terminal = exec.state.is_terminal();
    let rest = completions
        .filter(move |p| futures::future::ready(p.execution_id == id))
        .take(if terminal { 0 } else { 1 })
        .map(|p| json_event("completion", &p));
    let events = stream::once(async move { first }).chain(rest).map(Ok);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
