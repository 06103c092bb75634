//! What every handler shares.

use std::sync::Arc;
use std::time::Duration;

use ff_core::{CompletionBackend, EngineBackend};
use tokio::sync::watch;

use crate::metrics::Metrics;

/// Server settings; `Default` gives production values.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Bearer token required on `/v1/*` when set.
    pub api_token: Option<String>,
    /// Bearer token required on `/metrics` when set; when unset, `/metrics`
    /// takes `api_token` (and is open only when neither is set).
    pub metrics_token: Option<String>,
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Longest a long-poll claim waits.
    pub max_claim_wait: Duration,
    /// Connections served at once; further ones wait in the listen backlog
    /// until one closes. Keep it below the descriptor limit (`ulimit -n`).
    pub max_connections: usize,
    /// Time a client has to send a request's headers, counted from the
    /// connection's opening or the end of the previous response, so it is
    /// also how long a kept-alive connection may sit idle.
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves for this long is closed, even
    /// mid-request (a stalled upload, a client that stopped reading). Never
    /// shorter than `max_claim_wait` plus a second.
    pub idle_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            api_token: None,
            metrics_token: None,
            // A 1 MiB payload or result plus its JSON envelope.
            max_body_bytes: 2 * 1024 * 1024,
            max_claim_wait: Duration::from_secs(30),
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<dyn EngineBackend>,
    pub completions: Arc<dyn CompletionBackend>,
    pub config: Arc<ServerConfig>,
    pub metrics: Arc<Metrics>,
    /// Flips to true when the server drains: claims stop handing out work.
    pub draining: watch::Receiver<bool>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("engine", &self.engine)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }
}
