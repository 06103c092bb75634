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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            api_token: None,
            metrics_token: None,
            // A 1 MiB payload or result plus its JSON envelope.
            max_body_bytes: 2 * 1024 * 1024,
            max_claim_wait: Duration::from_secs(30),
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
