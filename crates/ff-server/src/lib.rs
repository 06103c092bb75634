//! FlowFabric's HTTP server: the JSON API under `/v1/namespaces/{namespace}/`
//! (executions, flows, the worker protocol, server-sent events), `/healthz`,
//! `/readyz`, `/metrics` and `/openapi.json`, with the engine's background
//! services running in the same process.
//!
//! # Layout
//! - [`routes`]: the router and one module per resource.
//! - [`error`]: the one mapping from errors to HTTP answers.
//! - [`extract`]: body, query and path extractors that reject with it.
//! - `auth`: bearer-token check. [`metrics`]: Prometheus text.
//! - [`openapi`]: the generated OpenAPI document.
//! - `connections`: the accept loop with its connection cap and timeouts.
//! - [`serve`]: runs the server and the engine until a shutdown signal,
//!   then drains both.

mod auth;
mod connections;
pub mod error;
pub mod extract;
mod lenient;
pub mod metrics;
pub mod openapi;
pub mod routes;
mod state;

use std::future::Future;
use std::sync::Arc;

use ff_core::{CompletionBackend, EngineBackend};
use ff_engine::{Engine, EngineConfig, StatsSnapshot};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use routes::router;
pub use state::{AppState, ServerConfig};

/// Serves the API on `listener` and runs the engine beside it until
/// `shutdown` resolves. Then it drains: claims stop handing out work and
/// open long-polls answer 204, in-flight requests finish, the engine stops.
/// The caller closes the backend afterwards.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<dyn EngineBackend>,
    completions: Arc<dyn CompletionBackend>,
    engine_config: EngineConfig,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<StatsSnapshot> {
    let services = Engine::start(engine.clone(), completions.clone(), engine_config);
    let (drain, draining) = watch::channel(false);
    let state = AppState {
        engine,
        completions,
        config: Arc::new(config),
        metrics: Arc::new(metrics::Metrics::new(Some(services.stats_handle()))),
        draining,
    };
    let settings = connections::Settings::new(&state.config);
    let app = router(state);
    let draining = drain.subscribe();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("draining: no more claims, waiting for open requests");
        let _ = drain.send(true);
    });
    connections::serve(listener, app, settings, draining).await;
    let stats = services.shutdown().await;
    Ok(stats)
}
