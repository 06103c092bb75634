//! Suspend and signals over HTTP: a handler suspends with its lease, an
//! outside party signals with the token alone (no API token), the resumed
//! claim carries the signal; bad tokens and late signals get their codes.

mod support;

use ff_server::ServerConfig;
use serde_json::{json, Value};
use support::{assert_error, read, Server};

const TOKEN: &str = "api-s3cret";

async fn server() -> Server {
    Server::with_config(ServerConfig {
        api_token: Some(TOKEN.to_owned()),
        ..ServerConfig::default()
    })
    .await
}

async fn post(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    let req = server
        .http
        .post(server.api(path))
        .bearer_auth(TOKEN)
        .json(body);
    read(req.send().await.expect("POST")).await
}

async fn get(server: &Server, path: &str) -> (u16, Value) {
    let req = server.http.get(server.api(path)).bearer_auth(TOKEN);
    read(req.send().await.expect("GET")).await
}

/// Signals with a token only, as an outside party would.
async fn signal(server: &Server, token: &str, body: &Value) -> (u16, Value) {
    let req = server
        .http
        .post(server.url(&format!("/v1/signals/{token}")))
        .json(body);
    read(req.send().await.expect("POST signal")).await
}

async fn claim(server: &Server) -> Value {
    let (status, body) = post(
        server,
        "/claims",
        &json!({"lanes": ["approvals"], "worker_id": "w1", "wait_ms": 2000}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body[0].clone()
}

#[tokio::test]
async fn suspend_then_signal_by_token_resumes_with_the_signal() {
    let server = server().await;
    let (status, submitted) = post(
        &server,
        "/executions",
        &json!({"lane": "approvals", "kind": "approve"}),
    )
    .await;
    assert_eq!(status, 201, "{submitted}");
    let id = submitted["id"].as_str().expect("id").to_owned();
    let claimed = claim(&server).await;
    let handle = claimed["handle"].clone();

    let (status, waitpoint) = post(
        &server,
        "/leases/waitpoint",
        &json!({"handle": handle, "key": "approve"}),
    )
    .await;
    assert_eq!(status, 200, "{waitpoint}");
    let token = waitpoint["token"].as_str().expect("token").to_owned();

    let (status, suspended) = post(
        &server,
        "/leases/suspend",
        &json!({"handle": handle, "key": "ask", "waitpoints": ["approve"],
                "timeout_ms": 60000, "on_timeout": "fail"}),
    )
    .await;
    assert_eq!(status, 200, "{suspended}");
    assert_eq!(suspended["status"], "suspended");
    assert_eq!(suspended["waitpoints"][0]["token"], token.as_str());
    let (_, exec) = get(&server, &format!("/executions/{id}")).await;
    assert_eq!(exec["state"], "suspended");

    let approval = json!({"name": "approved", "payload": {"by": "ada"}, "source": "curl",
                          "idempotency_key": "once"});
    let (status, sent) = signal(&server, &token, &approval).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(
        (sent["resumed"].clone(), sent["duplicate"].clone()),
        (json!(true), json!(false))
    );
    let (status, again) = signal(&server, &token, &approval).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["signal_id"], sent["signal_id"]);

    let resumed = claim(&server).await;
    assert_eq!(resumed["handle"]["execution_id"], id.as_str());
    assert_eq!(resumed["handle"]["attempt"], 1);
    assert_eq!(resumed["signals"][0]["name"], "approved");
    assert_eq!(resumed["signals"][0]["payload"]["by"], "ada");

    let (status, view) = get(&server, &format!("/executions/{id}/signals")).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["waitpoints"][0]["state"], "closed");
    assert_eq!(view["signals"].as_array().map(Vec::len), Some(1));
    assert!(
        !view.to_string().contains(&token),
        "tokens are never read back"
    );

    // The waitpoint is closed now: a new signal is a conflict.
    assert_error(
        signal(&server, &token, &json!({"name": "late"})).await,
        409,
        "conflict",
    );
}

#[tokio::test]
async fn bad_tokens_and_operator_signals_answer_their_codes() {
    let server = server().await;
    let (_, submitted) = post(
        &server,
        "/executions",
        &json!({"lane": "approvals", "kind": "approve"}),
    )
    .await;
    let id = submitted["id"].as_str().expect("id").to_owned();
    let claimed = claim(&server).await;
    let (_, waitpoint) = post(
        &server,
        "/leases/waitpoint",
        &json!({"handle": claimed["handle"], "key": "approve"}),
    )
    .await;
    let token = waitpoint["token"].as_str().expect("token").to_owned();
    let body = json!({"name": "x"});

    let forged = format!("{}x", token);
    let err = assert_error(signal(&server, &forged, &body).await, 422, "invalid");
    assert_eq!(err["field"], "token");
    assert_error(signal(&server, "garbage", &body).await, 422, "invalid");

    // The operator path needs the API token.
    let path = format!("/executions/{id}/waitpoints/approve/signals");
    let anonymous = server.http.post(server.api(&path)).json(&body);
    assert_error(
        read(anonymous.send().await.expect("POST")).await,
        401,
        "unauthorized",
    );
    let (status, sent) = post(&server, &path, &body).await;
    assert_eq!(status, 200, "{sent}");
    assert_error(
        post(
            &server,
            &format!("/executions/{id}/waitpoints/nowhere/signals"),
            &body,
        )
        .await,
        404,
        "not_found",
    );

    // A terminal execution takes no signal.
    let (status, _) = post(
        &server,
        "/leases/complete",
        &json!({"handle": claimed["handle"], "result": null}),
    )
    .await;
    assert_eq!(status, 200);
    let err = assert_error(signal(&server, &token, &body).await, 409, "not_active");
    assert_eq!(err["outcome"], "completed");

    let big = json!({"name": "x", "payload": "y".repeat(70 * 1024)});
    let err = assert_error(signal(&server, &token, &big).await, 422, "invalid");
    assert_eq!(err["field"], "payload");
}
