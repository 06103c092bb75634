//! Every error answer is the JSON `{code, message, field?}`, also when no
//! handler ran: an unknown route, a wrong method, a bad query or path.

mod support;

use support::{assert_error, read, Server};

#[tokio::test]
async fn unknown_route_answers_json_404() {
    let server = Server::start().await;
    for path in ["/nope", "/v1/namespaces/default/nope", "/v2"] {
        let resp = server.http.get(server.url(path)).send().await.expect("GET");
        assert_eq!(
            resp.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{path}"
        );
        assert_error(read(resp).await, 404, "not_found");
    }
}

#[tokio::test]
async fn wrong_method_answers_json_405_with_allow() {
    let server = Server::start().await;
    let resp = server
        .http
        .delete(server.api("/executions"))
        .send()
        .await
        .expect("DELETE");
    let allow = resp
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    assert_error(read(resp).await, 405, "method_not_allowed");
    let resp = server
        .http
        .post(server.url("/healthz"))
        .send()
        .await
        .expect("POST");
    assert_error(read(resp).await, 405, "method_not_allowed");
}

#[tokio::test]
async fn bad_query_answers_json_422_naming_the_parameter() {
    let server = Server::start().await;
    let body = assert_error(server.get("/executions?limit=many").await, 422, "invalid");
    assert_eq!(body["field"], "limit", "{body}");
    let body = assert_error(server.get("/flows?colour=red").await, 422, "invalid");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("colour")),
        "{body}"
    );
}

#[tokio::test]
async fn undecodable_path_answers_json_400() {
    let server = Server::start().await;
    let resp = server
        .http
        .get(server.url("/v1/namespaces/%FF/executions"))
        .send()
        .await
        .expect("GET");
    assert_error(read(resp).await, 400, "bad_request");
}
