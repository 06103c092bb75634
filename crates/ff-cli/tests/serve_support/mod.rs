//! Runs `ff serve` as a child process for the HTTP tests and talks to it.

#![allow(dead_code)] // Each test binary uses its own subset.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A running `ff serve`; killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    token: Option<String>,
    pub http: reqwest::Client,
}

impl Server {
    /// POSTs JSON to an API path of the default namespace; the JSON answer
    /// of a successful request.
    pub async fn post_api(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        let url = format!("{}/v1/namespaces/default{path}", self.base);
        let resp = self.http.post(url).json(body).send().await.expect("POST");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.expect("JSON")
    }

    /// Starts `ff serve` on a free port with the database at `db`.
    pub fn start(db: &std::path::Path, token: Option<&str>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ff"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .env_remove("FF_DATABASE_URL")
            .env_remove("FF_API_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(token) = token {
            cmd.env("FF_API_TOKEN", token);
        }
        let mut child = cmd.spawn().expect("start ff serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the address line");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        Self {
            child,
            base,
            token: token.map(str::to_owned),
            http: reqwest::Client::new(),
        }
    }

    /// A second handle on the same server with its own connection pool.
    pub fn client_for(other: &Server) -> Client {
        Client {
            base: other.base.clone(),
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `/v1/namespaces/default` + `path`.
    pub fn api(&self, path: &str) -> String {
        self.url(&format!("/v1/namespaces/default{path}"))
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// POSTs JSON; returns the status and the body (null when empty).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .authed(self.http.post(self.api(path)).json(body))
            .send()
            .await
            .expect("POST");
        read(resp).await
    }

    /// POSTs raw bytes as JSON.
    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let resp = self
            .authed(
                self.http
                    .post(self.api(path))
                    .header("content-type", "application/json")
                    .body(body),
            )
            .send()
            .await
            .expect("POST");
        read(resp).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .authed(self.http.get(self.api(path)))
            .send()
            .await
            .expect("GET");
        read(resp).await
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ff serve did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Claims up to `n` from `lane`, long-polling up to `wait_ms`.
    pub async fn claim(&self, lane: &str, n: u32, wait_ms: u64) -> Vec<Value> {
        let (status, body) = self
            .post(
                "/claims",
                &json!({"lanes": [lane], "n": n, "worker_id": "http-test", "wait_ms": wait_ms}),
            )
            .await;
        match status {
            200 => body.as_array().cloned().unwrap_or_default(),
            204 => Vec::new(),
            other => panic!("claim answered {other}: {body}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// A plain client of a running server.
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let url = format!("{}/v1/namespaces/default{path}", self.base);
        read(self.http.get(url).send().await.expect("GET")).await
    }
}
