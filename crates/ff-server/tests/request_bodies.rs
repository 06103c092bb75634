//! What a request body must be: JSON by content type (415 otherwise, so a
//! browser cannot post one cross-origin without a preflight), nested at
//! most `max_json_depth` deep, with plausible times.

mod support;

use serde_json::{json, Value};
use support::{assert_error, read, Server};

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

async fn post_typed(
    server: &Server,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut req = server.http.post(server.api(path)).body(body.to_owned());
    if let Some(content_type) = content_type {
        req = req.header("content-type", content_type);
    }
    read(req.send().await.expect("POST")).await
}

#[tokio::test]
async fn json_routes_refuse_other_content_types() {
    let server = Server::start().await;
    let body = r#"{"lane": "a", "kind": "k"}"#;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let got = post_typed(&server, "/executions", content_type, body).await;
        assert_error(got, 415, "unsupported_media_type");
    }
    let claim = r#"{"lanes": ["a"], "worker_id": "w"}"#;
    assert_error(
        post_typed(&server, "/claims", Some("text/plain"), claim).await,
        415,
        "unsupported_media_type",
    );
    let (_, list) = server.get("/executions").await;
    assert_eq!(list["items"], json!([]), "nothing was stored");

    let (status, created) = post_typed(
        &server,
        "/executions",
        Some("application/json; charset=utf-8"),
        body,
    )
    .await;
    assert_eq!(status, 201, "{created}");
}

#[tokio::test]
async fn deeply_nested_payloads_and_results_are_invalid() {
    let server = Server::start().await;
    let deep = format!(
        r#"{{"lane": "a", "kind": "k", "payload": {}}}"#,
        nested(129)
    );
    let body = assert_error(
        post_typed(&server, "/executions", Some("application/json"), &deep).await,
        422,
        "invalid",
    );
    assert_eq!(body["field"], "payload", "{body}");
    let far = format!(
        r#"{{"lane": "a", "kind": "k", "payload": {}}}"#,
        nested(50_000)
    );
    let body = assert_error(
        post_typed(&server, "/executions", Some("application/json"), &far).await,
        422,
        "invalid",
    );
    assert_eq!(body["field"], "payload", "{body}");
    let batch = format!(
        r#"{{"requests": [{{"lane": "a", "kind": "k"}}, {{"lane": "a", "kind": "k", "payload": {}}}]}}"#,
        nested(200)
    );
    let body = assert_error(
        post_typed(
            &server,
            "/executions/batch",
            Some("application/json"),
            &batch,
        )
        .await,
        422,
        "invalid",
    );
    assert_eq!(body["field"], "requests[1].payload", "{body}");

    let ok = format!(
        r#"{{"lane": "a", "kind": "k", "payload": {}}}"#,
        nested(128)
    );
    let (status, created) = post_typed(&server, "/executions", Some("application/json"), &ok).await;
    assert_eq!(status, 201, "128 deep is accepted: {created}");
    let (status, _) = server
        .post("/executions", &json!({"lane": "b", "kind": "k"}))
        .await;
    assert_eq!(status, 201);
    let (status, claimed) = server
        .post("/claims", &json!({"lanes": ["b"], "worker_id": "w"}))
        .await;
    assert_eq!(status, 200, "{claimed}");
    let complete = format!(
        r#"{{"handle": {}, "result": {}}}"#,
        claimed[0]["handle"],
        nested(129)
    );
    let body = assert_error(
        post_typed(
            &server,
            "/leases/complete",
            Some("application/json"),
            &complete,
        )
        .await,
        422,
        "invalid",
    );
    assert_eq!(body["field"], "result", "{body}");
}

#[tokio::test]
async fn times_outside_the_plausible_range_are_invalid() {
    let server = Server::start().await;
    for (field, at) in [
        ("run_at", json!(1_700_000_000)),
        ("deadline", json!(30_000)),
        ("deadline", json!(i64::MAX)),
        ("run_at", json!(32_503_680_000_000_i64)),
    ] {
        let body = assert_error(
            server
                .post("/executions", &json!({"lane": "a", "kind": "k", field: at}))
                .await,
            422,
            "invalid",
        );
        assert_eq!(body["field"], field, "{body}");
    }
    let (status, body) = server
        .post(
            "/executions",
            &json!({"lane": "a", "kind": "k", "run_at": 1_700_000_000_000_i64}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}
