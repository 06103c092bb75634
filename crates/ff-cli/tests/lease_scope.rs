//! A lease over HTTP belongs to its namespace and its secret token: another
//! namespace's path does not find it, a guessed token does not hold it, and
//! neither changes anything.

mod common;
mod serve_support;

use serde_json::{json, Value};

use common::Scratch;
use serve_support::Server;

/// POSTs `body` to `/v1/namespaces/{namespace}{path}`; the status and body.
async fn post_in(server: &Server, namespace: &str, path: &str, body: &Value) -> (u16, Value) {
    let resp = server
        .http
        .post(server.url(&format!("/v1/namespaces/{namespace}{path}")))
        .json(body)
        .send()
        .await
        .expect("POST");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The body of each lease operation, holding `handle`.
fn lease_ops(handle: &Value) -> [(&'static str, Value); 4] {
    [
        ("/leases/renew", json!({ "handle": handle })),
        ("/leases/release", json!({ "handle": handle })),
        (
            "/leases/complete",
            json!({ "handle": handle, "result": {"stolen": true} }),
        ),
        (
            "/leases/fail",
            json!({ "handle": handle, "error": "forged", "retryable": false }),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_operations_need_the_namespace_and_the_token() {
    let scratch = Scratch::new("serve-lease-scope");
    let server = Server::start(&scratch.path("ff.db"), None);
    let (status, submitted) = server
        .post("/executions", &json!({"lane": "scoped", "kind": "k"}))
        .await;
    assert_eq!(status, 201, "{submitted}");
    let id = submitted["id"].as_str().expect("id").to_owned();
    let claimed = server.claim("scoped", 1, 1_000).await;
    let handle = claimed[0]["handle"].clone();
    assert_eq!(handle["namespace"], "default", "{handle}");
    let token = handle["lease_token"].as_str().expect("a lease token");
    assert_eq!(token.len(), 32, "{handle}");

    // tenant-b's path, with the real handle or one claiming to be tenant-b's.
    let mut renamed = handle.clone();
    renamed["namespace"] = json!("tenant-b");
    for forged in [&handle, &renamed] {
        for (path, body) in lease_ops(forged) {
            let (status, answer) = post_in(&server, "tenant-b", path, &body).await;
            assert_eq!(status, 404, "{path}: {answer}");
            assert_eq!(answer["code"], "not_found", "{path}: {answer}");
        }
    }

    // The right namespace, but a guessed token: the lease is not held.
    let mut guessed = handle.clone();
    guessed["lease_token"] = json!("0123456789abcdef0123456789abcdef");
    for (path, body) in lease_ops(&guessed) {
        let (status, answer) = post_in(&server, "default", path, &body).await;
        assert_eq!(status, 409, "{path}: {answer}");
        assert_eq!(answer["code"], "lease_lost", "{path}: {answer}");
    }

    // A handle without its token is not a handle.
    let mut tokenless = handle.clone();
    tokenless
        .as_object_mut()
        .expect("an object")
        .remove("lease_token");
    let (status, answer) = post_in(
        &server,
        "default",
        "/leases/renew",
        &json!({ "handle": tokenless }),
    )
    .await;
    assert_eq!(status, 422, "{answer}");

    // Nothing changed, the real handle still holds the lease, and no read
    // reveals its token.
    let (status, exec) = server.get(&format!("/executions/{id}")).await;
    assert_eq!(status, 200, "{exec}");
    assert_eq!(exec["state"], "running", "{exec}");
    assert!(exec.get("lease_token").is_none(), "{exec}");
    assert!(!exec.to_string().contains(token), "{exec}");
    let (status, done) = server
        .post(
            "/leases/complete",
            &json!({"handle": handle, "result": {"mine": true}}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    let (_, result) = server.get(&format!("/executions/{id}/result")).await;
    assert_eq!(result["result"], json!({"mine": true}), "{result}");
}
