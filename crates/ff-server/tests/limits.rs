//! Flow control over HTTP: policies set, read and removed by name; a
//! concurrency key held at claim and named by `why`; a worker's usage
//! report breaching a budget; bad policies refused with their field.

mod support;

use serde_json::{json, Value};
use support::{assert_error, read, Server};

async fn put(server: &Server, name: &str, body: &Value) -> (u16, Value) {
    let req = server
        .http
        .put(server.api(&format!("/policies/{name}")))
        .json(body);
    read(req.send().await.expect("PUT")).await
}

async fn get(server: &Server, path: &str) -> (u16, Value) {
    server.get(path).await
}

async fn claim(server: &Server, lane: &str) -> Value {
    let (status, body) = server
        .post(
            "/claims",
            &json!({"lanes": [lane], "worker_id": "w1", "n": 10}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn a_concurrency_policy_holds_the_second_claim_and_why_says_so() {
    let server = Server::start().await;
    let (status, policy) = put(
        &server,
        "partner",
        &json!({"kind": "concurrency", "pattern": "partner-api", "limit": 1}),
    )
    .await;
    assert_eq!(status, 200, "{policy}");
    assert_eq!(policy["version"], 1);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, body) = server
            .post(
                "/executions",
                &json!({"lane": "q", "kind": "call", "concurrency_key": "partner-api"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    let claimed = claim(&server, "q").await;
    assert_eq!(claimed.as_array().map(Vec::len), Some(1), "{claimed}");
    let (status, why) = get(&server, &format!("/executions/{}/why", ids[1])).await;
    assert_eq!(status, 200, "{why}");
    assert_eq!(why["holding"]["reason"], "limited", "{why}");
    assert_eq!(why["holding"]["held"]["by"], "concurrency", "{why}");
    assert_eq!(why["holding"]["held"]["running"], 1, "{why}");

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
        metrics.contains(
            "ff_concurrency_running{namespace=\"default\",policy=\"partner\",key=\"partner-api\"} 1"
        ),
        "{metrics}"
    );
    let passed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ff_claims_passed_over_total{reason=\"concurrency\"} "))
        .and_then(|n| n.parse().ok())
        .expect("passed-over counter");
    assert!(passed >= 1, "{metrics}");

    let (status, listed) = get(&server, "/policies").await;
    assert_eq!(status, 200);
    assert_eq!(listed[0]["name"], "partner", "{listed}");
    let resp = server
        .http
        .delete(server.api("/policies/partner"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(resp.status().as_u16(), 204);
    let resp = server
        .http
        .delete(server.api("/policies/partner"))
        .send()
        .await
        .expect("DELETE again");
    assert_error(read(resp).await, 404, "not_found");
    assert_eq!(claim(&server, "q").await.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn usage_reports_breach_a_budget_once_per_key() {
    let server = Server::start().await;
    let (status, body) = put(
        &server,
        "acme-tokens",
        &json!({"kind": "budget", "scope": "acme",
                "limits": [{"dimension": "tokens", "soft": 50, "hard": 100}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..2 {
        server
            .post(
                "/executions",
                &json!({"lane": "llm", "kind": "ask", "fairness_key": "acme"}),
            )
            .await;
    }
    let claimed = server
        .post("/claims", &json!({"lanes": ["llm"], "worker_id": "w1"}))
        .await
        .1;
    let handle = claimed[0]["handle"].clone();
    for _ in 0..2 {
        let (status, statuses) = server
            .post(
                "/leases/usage",
                &json!({"handle": handle, "dedup_key": "call-1", "amounts": {"tokens": 100}}),
            )
            .await;
        assert_eq!(status, 200, "{statuses}");
        assert_eq!(statuses[0]["standing"]["status"], "hard", "{statuses}");
    }
    let (status, budget) = get(&server, "/budgets/acme-tokens").await;
    assert_eq!(status, 200);
    assert_eq!(budget["used"]["tokens"], 100, "{budget}");
    assert_eq!(budget["remaining"]["tokens"], 0, "{budget}");
    let (status, more) = server
        .post("/claims", &json!({"lanes": ["llm"], "worker_id": "w1"}))
        .await;
    assert_eq!(status, 204, "the breached scope is not claimed: {more}");
    assert_error(get(&server, "/budgets/none").await, 404, "not_found");
}

#[tokio::test]
async fn bad_policies_are_refused_with_their_field() {
    let server = Server::start().await;
    let body = assert_error(
        put(
            &server,
            "p",
            &json!({"kind": "concurrency", "pattern": "a", "limit": 0}),
        )
        .await,
        422,
        "invalid",
    );
    assert_eq!(body["field"], "limit", "{body}");
    assert_error(
        put(&server, "p", &json!({"kind": "nonsense"})).await,
        422,
        "invalid",
    );
    let body = assert_error(
        put(
            &server,
            "bad name",
            &json!({"kind": "concurrency", "pattern": "a", "limit": 1}),
        )
        .await,
        422,
        "invalid",
    );
    assert_eq!(body["field"], "name", "{body}");
    assert_eq!(get(&server, "/policies").await.1, json!([]));
}
