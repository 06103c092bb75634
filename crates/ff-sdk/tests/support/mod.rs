//! One SQLite database in a temporary directory, reached either embedded or
//! through `ff_server::serve` running in this process on 127.0.0.1:0, so
//! every scenario runs unchanged over both transports.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ff_backend_sqlite::{SqliteBackend, SqliteConfig, Synchronous};
use ff_engine::{lease_expiry, scheduled_promoter, EngineConfig};
use ff_sdk::{Client, ExecutionId, ExecutionResult, JsonText, RetryPolicy, SubmitRequest};
use ff_server::ServerConfig;
use ff_testkit::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Which way the client reaches the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Embedded,
    Http,
}

/// A client on a fresh database; [`Harness::close`] stops everything.
pub struct Harness {
    pub client: Client,
    pub transport: Transport,
    backend: Arc<SqliteBackend>,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    _dir: TempDir,
}

/// Short service intervals, so retries and expiries take milliseconds.
pub fn engine_config() -> EngineConfig {
    EngineConfig {
        lease_expiry: lease_expiry::Config {
            interval: Duration::from_millis(50),
            ..Default::default()
        },
        scheduled_promoter: scheduled_promoter::Config {
            interval: Duration::from_millis(20),
            ..Default::default()
        },
        ..Default::default()
    }
}

impl Harness {
    pub async fn start(transport: Transport, label: &str) -> Self {
        let dir = TempDir::new(label);
        let config = SqliteConfig::new(dir.path().join("ff.db")).synchronous(Synchronous::Normal);
        let backend = Arc::new(SqliteBackend::open(config).await.expect("open SQLite"));
        let (client, server) = match transport {
            Transport::Embedded => (
                Client::embedded_with_config(backend.clone(), backend.clone(), engine_config()),
                None,
            ),
            Transport::Http => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let addr = listener.local_addr().expect("address");
                let (stop, stopped) = oneshot::channel::<()>();
                let served = tokio::spawn(ff_server::serve(
                    listener,
                    backend.clone(),
                    backend.clone(),
                    engine_config(),
                    ServerConfig::default(),
                    async move {
                        let _ = stopped.await;
                    },
                ));
                let task = tokio::spawn(async move {
                    served.await.expect("server task").expect("serve");
                });
                let client = Client::http(format!("http://{addr}"), None).expect("client");
                (client, Some((stop, task)))
            }
        };
        Self {
            client,
            transport,
            backend,
            server,
            _dir: dir,
        }
    }

    /// Stops the engine (or the server and its engine), then the database.
    pub async fn close(self) {
        self.client.shutdown().await;
        if let Some((stop, task)) = self.server {
            let _ = stop.send(());
            let _ = task.await;
        }
        self.backend.close().await;
    }
}

/// Runs `scenario` on a fresh harness of each transport, one after the
/// other, and returns both answers (embedded first).
pub async fn on_both<T, F, Fut>(label: &str, scenario: F) -> (T, T)
where
    F: Fn(Harness) -> Fut,
    Fut: Future<Output = T>,
{
    let embedded = scenario(Harness::start(Transport::Embedded, label).await).await;
    let http = scenario(Harness::start(Transport::Http, label).await).await;
    (embedded, http)
}

/// A request on `lane` with quick retries.
pub fn request(lane: &str, kind: &str, payload: serde_json::Value) -> SubmitRequest {
    SubmitRequest::new(lane, kind, JsonText::from_value(&payload)).retry(RetryPolicy {
        max_attempts: 3,
        initial_backoff_ms: 20,
        max_backoff_ms: 50,
        jitter_percent: 0,
    })
}

/// Waits for `id` to end, failing the test after 20 s.
pub async fn finished(client: &Client, id: ExecutionId) -> ExecutionResult {
    client
        .wait_for_result(id, Duration::from_secs(20))
        .await
        .expect("wait for the result")
        .unwrap_or_else(|| panic!("{id} did not finish within 20 s"))
}

/// Polls `check` every 20 ms until it holds, failing after 10 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
