//! `ff limits` and `ff budget` against a real `ff serve`: a concurrency
//! limit set, held work named by `ff why`, a budget breached by a usage
//! report, bad flags refused, and policies removed.

mod cli_support;
mod common;
mod serve_support;

use serde_json::json;

use cli_support::{fails, ff, json_of, ok};
use common::Scratch;
use serve_support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_set_hold_work_and_budgets_read_back() {
    let scratch = Scratch::new("cli-limits");
    let server = Server::start(&scratch.path("ff.db"), None);
    let set = ok(ff(
        &server,
        &[
            "limits",
            "set",
            "partner",
            "--concurrency",
            "partner-api",
            "--limit",
            "1",
        ],
    ));
    assert!(set.contains("version   1"), "{set}");
    ok(ff(
        &server,
        &[
            "limits",
            "set",
            "acme",
            "--budget",
            "acme",
            "--hard",
            "tokens=100",
            "--soft",
            "tokens=50",
        ],
    ));
    let listed = ok(ff(&server, &["limits", "ls"]));
    assert!(listed.contains("1 running per partner-api"), "{listed}");
    assert!(listed.contains("tokens soft 50 hard 100"), "{listed}");

    let keyed = [
        "submit",
        "--lane",
        "q",
        "--kind",
        "call",
        "--concurrency-key",
        "partner-api",
        "--fairness-key",
        "acme",
    ];
    ok(ff(&server, &keyed));
    let second = ok(ff(&server, &keyed)).trim().to_owned();
    let claimed = server
        .post_api(
            "/claims",
            &json!({"lanes": ["q"], "worker_id": "w", "n": 5}),
        )
        .await;
    assert_eq!(claimed.as_array().map(Vec::len), Some(1), "{claimed}");
    let why = ok(ff(&server, &["why", &second]));
    assert!(
        why.contains("held by concurrency key partner-api: 1 of 1 running"),
        "{why}"
    );

    server
        .post_api(
            "/leases/usage",
            &json!({"handle": claimed[0]["handle"], "dedup_key": "r1", "amounts": {"tokens": 120}}),
        )
        .await;
    let shown = ok(ff(&server, &["budget", "show", "acme"]));
    assert!(shown.contains("HARD breach: tokens"), "{shown}");
    assert!(shown.contains("remaining  tokens=0"), "{shown}");
    let all = json_of(&ok(ff(&server, &["budget", "ls", "--json"])));
    assert_eq!(all[0]["used"]["tokens"], 120, "{all}");

    let err = fails(ff(
        &server,
        &["limits", "set", "bad", "--concurrency", "k", "--limit", "0"],
    ));
    assert!(err.contains("limit"), "{err}");
    let err = fails(ff(&server, &["limits", "set", "none"]));
    assert!(err.contains("--concurrency"), "{err}");
    ok(ff(&server, &["limits", "rm", "partner"]));
    let err = fails(ff(&server, &["limits", "rm", "partner"]));
    assert!(err.contains("not found"), "{err}");
    let left = json_of(&ok(ff(&server, &["limits", "ls", "--json"])));
    assert_eq!(left.as_array().map(Vec::len), Some(1), "{left}");
}
