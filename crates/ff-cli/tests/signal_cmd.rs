//! `ff signal` against a real `ff serve`: by token (what an outside party
//! holds) and by execution and waitpoint; `ff show` lists both and
//! `ff why` says what the execution waits for.

mod cli_support;
mod common;
mod serve_support;

use serde_json::json;

use cli_support::{fails, ff, json_of, ok};
use common::Scratch;
use serve_support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_by_token_and_by_waitpoint() {
    let scratch = Scratch::new("cli-signal");
    let server = Server::start(&scratch.path("ff.db"), None);
    let id = ok(ff(
        &server,
        &["submit", "--lane", "gate", "--kind", "approve"],
    ))
    .trim()
    .to_owned();
    let claims = json!({"lanes": ["gate"], "worker_id": "w", "wait_ms": 2000});
    let claimed = server.post_api("/claims", &claims).await;
    let handle = claimed[0]["handle"].clone();
    let suspended = server
        .post_api(
            "/leases/suspend",
            &json!({"handle": handle, "key": "ask", "waitpoints": ["approve", "audit"],
                "condition": {"kind": "all"}}),
        )
        .await;
    let token = suspended["waitpoints"][0]["token"]
        .as_str()
        .expect("token")
        .to_owned();

    let why = ok(ff(&server, &["why", &id]));
    assert!(
        why.contains("suspended until all of approve, audit is signalled"),
        "{why}"
    );
    let why = json_of(&ok(ff(&server, &["why", &id, "--json"])));
    assert_eq!(why["holding"]["reason"], "suspended", "{why}");

    let out = ok(ff(
        &server,
        &[
            "signal",
            &token,
            "--name",
            "approved",
            "--payload",
            r#"{"by":"ada"}"#,
        ],
    ));
    assert!(out.starts_with("delivered signal "), "{out}");
    assert!(!out.contains("resumed"), "one of two waitpoints: {out}");

    let sent = json_of(&ok(ff(
        &server,
        &[
            "signal",
            "--execution",
            &id,
            "--waitpoint",
            "audit",
            "--name",
            "audited",
            "--idempotency-key",
            "a1",
            "--json",
        ],
    )));
    assert_eq!(sent["resumed"], true, "{sent}");

    let shown = ok(ff(&server, &["show", &id]));
    for expected in ["waitpoints", "signals", "approved", "audited", "closed"] {
        assert!(shown.contains(expected), "no {expected} in:\n{shown}");
    }
    assert!(!shown.contains(&token), "tokens are never shown");

    // The waitpoint is closed now; a bad token is refused as such.
    let err = fails(ff(&server, &["signal", &token, "--name", "late"]));
    assert!(err.contains("closed"), "{err}");
    let err = fails(ff(&server, &["signal", "not-a-token"]));
    assert!(err.contains("token"), "{err}");
}
