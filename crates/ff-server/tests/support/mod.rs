//! An in-process `ff_server::serve` on the reference backend, bound to a
//! free port, and a small client for it. Stops when dropped.

#![allow(dead_code)] // Each test binary uses its own subset.

use std::net::SocketAddr;
use std::sync::Arc;

use ff_core::SystemClock;
use ff_engine::EngineConfig;
use ff_server::ServerConfig;
use ff_testkit::reference::ReferenceBackend;
use serde_json::Value;
use tokio::sync::oneshot;

/// A running server; shut down on drop.
pub struct Server {
    pub addr: SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

impl Server {
    /// Starts a server with default settings.
    pub async fn start() -> Self {
        Self::with_config(ServerConfig::default()).await
    }

    /// Starts a server with `config`.
    pub async fn with_config(config: ServerConfig) -> Self {
        let backend = Arc::new(ReferenceBackend::new(Arc::new(SystemClock)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(ff_server::serve(
            listener,
            backend.clone(),
            backend,
            EngineConfig::default(),
            config,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            _stop: stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `/v1/namespaces/default` + `path`.
    pub fn api(&self, path: &str) -> String {
        self.url(&format!("/v1/namespaces/default{path}"))
    }

    /// POSTs JSON to an API path.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        read(
            self.http
                .post(self.api(path))
                .json(body)
                .send()
                .await
                .expect("POST"),
        )
        .await
    }

    /// GETs an API path.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        read(self.http.get(self.api(path)).send().await.expect("GET")).await
    }
}

/// The status and the body as JSON (a string when it is not JSON, null
/// when empty).
pub async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Asserts a JSON error answer with `status` and `code`; returns its body.
pub fn assert_error(got: (u16, Value), status: u16, code: &str) -> Value {
    let (got_status, body) = got;
    assert_eq!(got_status, status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].is_string(), "{body}");
    body
}
