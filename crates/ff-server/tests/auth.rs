//! Bearer tokens: the API token guards `/v1/*` and, unless a metrics token
//! is set, `/metrics`; health and the OpenAPI document stay open.

mod support;

use ff_server::ServerConfig;
use support::{assert_error, read, Server};

async fn metrics_status(server: &Server, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = server.http.get(server.url("/metrics"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    read(req.send().await.expect("GET /metrics")).await
}

#[tokio::test]
async fn metrics_need_the_api_token_when_it_is_set() {
    let server = Server::with_config(ServerConfig {
        api_token: Some("s3cret".to_owned()),
        ..ServerConfig::default()
    })
    .await;
    assert_error(metrics_status(&server, None).await, 401, "unauthorized");
    assert_error(
        metrics_status(&server, Some("s3cre")).await,
        401,
        "unauthorized",
    );
    let (status, body) = metrics_status(&server, Some("s3cret")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.as_str().is_some_and(|b| b.contains("ff_executions")),
        "{body}"
    );
    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("GET");
    assert_eq!(health.status(), 200, "health needs no token");
    let doc = server
        .http
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("GET");
    assert_eq!(doc.status(), 200, "the OpenAPI document needs no token");
}

#[tokio::test]
async fn a_metrics_token_replaces_the_api_token_on_metrics() {
    let server = Server::with_config(ServerConfig {
        api_token: Some("api".to_owned()),
        metrics_token: Some("scrape".to_owned()),
        ..ServerConfig::default()
    })
    .await;
    assert_error(
        metrics_status(&server, Some("api")).await,
        401,
        "unauthorized",
    );
    assert_eq!(metrics_status(&server, Some("scrape")).await.0, 200);
    let resp = server
        .http
        .get(server.api("/executions"))
        .bearer_auth("scrape")
        .send()
        .await
        .expect("GET");
    assert_eq!(
        resp.status(),
        401,
        "the metrics token does not open the API"
    );
}

#[tokio::test]
async fn metrics_stay_open_without_any_token() {
    let server = Server::start().await;
    assert_eq!(metrics_status(&server, None).await.0, 200);
}
