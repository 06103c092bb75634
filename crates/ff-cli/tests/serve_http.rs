//! `ff serve` end to end: a real child process driven over HTTP.

mod common;
mod serve_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::Scratch;
use serve_support::Server;

/// A node running on a lane named after its key.
fn node(key: &str) -> Value {
    json!({"key": key, "execution": {"lane": key, "kind": "step", "payload": {"node": key}}})
}

/// Runs every node of `keys` once it is claimable, completing it with its key.
async fn run_nodes(server: &Server, keys: &[&str]) -> HashMap<String, u32> {
    let mut done = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while done.len() < keys.len() {
        assert!(
            Instant::now() < deadline,
            "nodes never became claimable: {done:?}"
        );
        for key in keys {
            if done.contains_key(*key) {
                continue;
            }
            for claimed in server.claim(key, 1, 50).await {
                let (status, body) = server
                    .post(
                        "/leases/complete",
                        &json!({"handle": claimed["handle"], "result": {"ran": key}}),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
                done.insert(
                    (*key).to_owned(),
                    claimed["handle"]["attempt"].as_u64().unwrap_or(0) as u32,
                );
            }
        }
    }
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_runs_with_http_workers_and_reads_back() {
    let scratch = Scratch::new("serve-flow");
    let server = Server::start(&scratch.path("ff.db"), None);
    let spec = json!({
        "nodes": [node("a"), node("b"), node("c"), node("d")],
        "edges": [{"from": "a", "to": "b"}, {"from": "a", "to": "c"},
                  {"from": "b", "to": "d"}, {"from": "c", "to": "d"}]
    });
    let (status, created) = server.post("/flows", &spec).await;
    assert_eq!(status, 201, "{created}");
    let flow_id = created["flow_id"].as_str().expect("flow id").to_owned();
    let d = created["nodes"]["d"].as_str().expect("d").to_owned();

    // Follow d's events while the flow runs.
    let events = server
        .http
        .get(server.api(&format!("/executions/{d}/events")))
        .send()
        .await
        .expect("events");
    assert_eq!(events.status(), 200);

    run_nodes(&server, &["a", "b", "c", "d"]).await;

    let body = tokio::time::timeout(Duration::from_secs(10), events.text())
        .await
        .expect("the event stream ends after d completes")
        .expect("events body");
    assert!(body.contains("event: state"), "{body}");
    assert!(
        body.contains("event: completion") && body.contains("\"completed\""),
        "{body}"
    );

    let (status, flow) = server.get(&format!("/flows/{flow_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(flow["state"], "completed");
    assert_eq!(flow["nodes"].as_array().map(Vec::len), Some(4));
    let (_, result) = server.get(&format!("/executions/{d}/result")).await;
    assert_eq!(result["outcome"], "completed");
    assert_eq!(result["result"], json!({"ran": "d"}));
    let (_, exec) = server.get(&format!("/executions/{d}")).await;
    assert_eq!(exec["inputs"]["b"]["outcome"], "completed");
    let (_, flows) = server.get("/flows?state=completed").await;
    assert_eq!(flows["items"].as_array().map(Vec::len), Some(1));

    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("ff_executions{namespace=\"default\",lane=\"d\",state=\"completed\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ff_http_requests_total"), "{metrics}");
    assert!(
        metrics.contains("ff_promotion_lag_seconds_count"),
        "{metrics}"
    );
}

async fn assert_error(result: (u16, Value), status: u16, code: &str) -> Value {
    let (got, body) = result;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].is_string(), "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_paths_answer_their_status_and_store_nothing() {
    let scratch = Scratch::new("serve-errors");
    let server = Server::start(&scratch.path("ff.db"), None);

    assert_error(
        server
            .post_raw("/executions", b"{\"lane\": ".to_vec())
            .await,
        400,
        "malformed_json",
    )
    .await;
    let body = assert_error(
        server
            .post("/executions", &json!({"lane": "has space", "kind": "k"}))
            .await,
        422,
        "invalid",
    )
    .await;
    assert_eq!(body["field"], "lane");
    let body = assert_error(
        server
            .post(
                "/executions",
                &json!({"lane": "a", "kind": "k", "priority": "high"}),
            )
            .await,
        422,
        "invalid",
    )
    .await;
    assert_eq!(body["field"], "priority");
    let body = assert_error(
        server
            .post(
                "/executions",
                &json!({"lane": "a", "kind": "k", "lease_ms": 0}),
            )
            .await,
        422,
        "invalid",
    )
    .await;
    assert_eq!(body["field"], "lease_ms");
    assert_error(
        server
            .get("/executions/0190b3c4-0000-7000-8000-000000000000")
            .await,
        404,
        "not_found",
    )
    .await;
    assert_error(server.get("/executions/not-a-uuid").await, 404, "not_found").await;
    let (_, list) = server.get("/executions").await;
    assert_eq!(list["items"], json!([]), "nothing was stored");

    // A stale lease: the handle of an attempt that no longer holds it.
    let (status, _) = server
        .post("/executions", &json!({"lane": "a", "kind": "k"}))
        .await;
    assert_eq!(status, 201);
    let claimed = server.claim("a", 1, 0).await;
    let mut stale = claimed[0]["handle"].clone();
    stale["lease_epoch"] = json!(99);
    assert_error(
        server
            .post("/leases/complete", &json!({"handle": stale}))
            .await,
        409,
        "lease_lost",
    )
    .await;
    let (status, _) = server
        .post(
            "/leases/complete",
            &json!({"handle": claimed[0]["handle"], "result": 1}),
        )
        .await;
    assert_eq!(status, 200, "the real handle still completes");
    assert_error(
        server
            .post("/leases/complete", &json!({"handle": stale, "result": 2}))
            .await,
        409,
        "lease_lost",
    )
    .await;
    let (_, counts) = server.get("/counts").await;
    assert_eq!(
        counts,
        json!([{"lane": "a", "state": "completed", "count": 1}])
    );

    // Last: the server answers 413 before reading the whole body and closes
    // that connection.
    let huge = format!(
        "{{\"lane\":\"b\",\"kind\":\"k\",\"payload\":\"{}\"}}",
        "x".repeat(3 * 1024 * 1024)
    );
    assert_error(
        server.post_raw("/executions", huge.into_bytes()).await,
        413,
        "payload_too_large",
    )
    .await;
    let fresh = Server::client_for(&server);
    let (_, counts) = fresh.get("/counts").await;
    assert_eq!(
        counts,
        json!([{"lane": "a", "state": "completed", "count": 1}]),
        "the oversized body stored nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_required_when_set() {
    let scratch = Scratch::new("serve-token");
    let server = Server::start(&scratch.path("ff.db"), Some("s3cret"));
    let plain = reqwest::Client::new();
    let resp = plain
        .get(server.api("/executions"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["code"], "unauthorized");
    let resp = plain
        .get(server.api("/executions"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 401);
    let (status, _) = server.get("/executions").await;
    assert_eq!(status, 200, "the right token passes");
    let health = plain.get(server.url("/healthz")).send().await.expect("GET");
    assert_eq!(health.status(), 200, "health needs no token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_is_openapi_3() {
    let scratch = Scratch::new("serve-openapi");
    let server = Server::start(&scratch.path("ff.db"), None);
    let doc: Value = server
        .http
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/v1/namespaces/{namespace}/executions",
        "/v1/namespaces/{namespace}/flows",
        "/v1/namespaces/{namespace}/claims",
        "/v1/namespaces/{namespace}/leases/complete",
    ] {
        assert!(paths.contains_key(path), "missing {path}");
    }
    assert!(doc["components"]["schemas"]["SubmitRequest"].is_object());
    std::fs::write(scratch.path("openapi.json"), doc.to_string()).expect("write");
    if let Ok(out) = std::env::var("FF_OPENAPI_OUT") {
        std::fs::write(out, doc.to_string()).expect("write the document for validation");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_long_polls_and_restart_finishes_the_work() {
    let scratch = Scratch::new("serve-sigterm");
    let db = scratch.path("ff.db");
    let mut server = Server::start(&db, None);
    let reqs: Vec<Value> = (0..6)
        .map(|i| json!({"lane": "work", "kind": "k", "payload": {"i": i}, "lease_ms": 500,
                         "retry": {"max_attempts": 5, "initial_backoff_ms": 10, "max_backoff_ms": 100}}))
        .collect();
    let (status, body) = server
        .post("/executions/batch", &json!({"requests": reqs}))
        .await;
    assert_eq!(status, 200, "{body}");
    let held = server.claim("work", 3, 0).await;
    assert_eq!(held.len(), 3, "a worker holds three leases");

    // A long-poll on an empty lane is open when SIGTERM arrives.
    let base = server.base.clone();
    let poll = tokio::spawn(async move {
        let started = Instant::now();
        let resp = reqwest::Client::new()
            .post(format!("{base}/v1/namespaces/default/claims"))
            .json(&json!({"lanes": ["empty"], "worker_id": "w", "wait_ms": 25_000}))
            .send()
            .await
            .expect("long poll");
        (resp.status().as_u16(), started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = server.terminate();
    assert!(status.success(), "ff serve exits cleanly: {status}");
    let (poll_status, waited) = poll.await.expect("join");
    assert_eq!(poll_status, 204, "an open long-poll answers 204 on drain");
    assert!(
        waited < Duration::from_secs(10),
        "answered at once, not at its timeout"
    );
    drop(server);

    // After a restart the held leases expire and every execution finishes.
    let server = Server::start(&db, None);
    let mut completed = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while completed < 6 {
        assert!(Instant::now() < deadline, "only {completed} of 6 finished");
        for claimed in server.claim("work", 6, 500).await {
            let (status, body) = server
                .post(
                    "/leases/complete",
                    &json!({"handle": claimed["handle"], "result": null}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            completed += 1;
        }
    }
    let (_, counts) = server.get("/counts").await;
    assert_eq!(
        counts,
        json!([{"lane": "work", "state": "completed", "count": 6}]),
        "none lost"
    );
    for h in held {
        let (status, _) = server
            .post("/leases/complete", &json!({"handle": h["handle"]}))
            .await;
        assert_eq!(
            status, 409,
            "the killed worker's late completes are refused"
        );
    }
}

/// The README's curl session, run as written against a live server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_curl_session_runs() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README");
    let session = readme
        .split("```sh\n# curl session")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README has a ```sh block starting with `# curl session`");
    let scratch = Scratch::new("serve-readme");
    let server = Server::start(&scratch.path("ff.db"), None);
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", session])
        .env("FF", &server.base)
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"outcome\":\"completed\""), "{stdout}");
}
