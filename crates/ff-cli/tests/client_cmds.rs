//! The client commands (`ff submit`, `flow submit`, `ls`, `show`, `cancel`,
//! `retry`, `stats`) against a real `ff serve`, and the README's CLI session
//! run as written.

mod cli_support;
mod common;
mod serve_support;

use std::process::Command;

use serde_json::json;

use cli_support::{fails, fails_with, ff, ff_at, json_of, ok};
use common::Scratch;
use serve_support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_submit_read_and_steer_executions() {
    let scratch = Scratch::new("cli-cmds");
    let server = Server::start(&scratch.path("ff.db"), None);

    let id = ok(ff(
        &server,
        &[
            "submit",
            "--lane",
            "emails",
            "--kind",
            "send",
            "--payload",
            r#"{"to": "ada"}"#,
        ],
    ))
    .trim()
    .to_owned();
    let again = json_of(&ok(ff(
        &server,
        &[
            "submit",
            "--lane",
            "emails",
            "--kind",
            "send",
            "--priority",
            "-5",
            "--idempotency-key",
            "k1",
            "--json",
        ],
    )));
    assert_eq!(again["created"], true);
    let repeat = json_of(&ok(ff(
        &server,
        &[
            "submit",
            "--lane",
            "emails",
            "--kind",
            "send",
            "--idempotency-key",
            "k1",
            "--json",
        ],
    )));
    assert_eq!(
        (repeat["id"].clone(), repeat["created"].clone()),
        (again["id"].clone(), json!(false))
    );
    assert_eq!(
        repeat["conflicting_spec"], true,
        "the repeat left the priority out"
    );
    ok(ff(
        &server,
        &["submit", "--lane", "reports", "--kind", "build"],
    ));

    let page = json_of(&ok(ff(&server, &["ls", "--lane", "emails", "--json"])));
    let ids: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str(), again["id"].as_str().unwrap_or("")]);
    let table = ok(ff(&server, &["ls", "--kind", "build"]));
    assert!(table.starts_with("ID "), "{table}");
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(
        table.contains("reports") && table.contains("ready"),
        "{table}"
    );
    let limited = json_of(&ok(ff(&server, &["ls", "--limit", "1", "--json"])));
    assert!(limited["next_cursor"].is_string(), "{limited}");

    let shown = ok(ff(&server, &["show", &id]));
    assert!(shown.contains("state      ready"), "{shown}");
    assert!(shown.contains(r#"payload    {"to": "ada"}"#), "{shown}");
    let stats = ok(ff(&server, &["stats"]));
    assert!(
        stats
            .lines()
            .any(|l| l.split_whitespace().eq(["emails", "2", "2"])),
        "{stats}"
    );
    assert!(
        stats
            .lines()
            .any(|l| l.split_whitespace().eq(["reports", "1", "1"])),
        "{stats}"
    );

    // A failed execution can be retried; a ready one cannot.
    let err = fails(ff(&server, &["retry", &id]));
    assert!(
        err.contains("only a failed execution can be requeued"),
        "{err}"
    );
    let claimed = server.claim("emails", 1, 1000).await;
    let (status, _) = server
        .post(
            "/leases/fail",
            &json!({"handle": claimed[0]["handle"], "error": "boom", "retryable": false}),
        )
        .await;
    assert_eq!(status, 200);
    let shown = ok(ff(&server, &["show", &id]));
    assert!(
        shown.contains("state      failed") && shown.contains("boom"),
        "{shown}"
    );
    assert!(ok(ff(&server, &["retry", &id])).contains("requeued"));
    assert!(ok(ff(&server, &["show", &id])).contains("state      ready"));

    assert_eq!(
        ok(ff(&server, &["cancel", &id])).trim(),
        format!("cancelled {id}")
    );
    let answer = json_of(&ok(ff(&server, &["cancel", &id, "--json"])));
    assert_eq!(answer, json!({"outcome": "cancelled", "changed": false}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_submit_shows_and_cancels_a_flow() {
    let scratch = Scratch::new("cli-flow");
    let server = Server::start(&scratch.path("ff.db"), None);
    let file = scratch.path("flow.json");
    let spec = json!({
        "nodes": [
            {"key": "fetch", "execution": {"lane": "etl", "kind": "fetch"}},
            {"key": "parse", "execution": {"lane": "etl", "kind": "parse"}}
        ],
        "edges": [{"from": "fetch", "to": "parse"}]
    });
    std::fs::write(&file, spec.to_string()).expect("write the spec");
    let path = file.to_str().expect("path");

    let created = json_of(&ok(ff(&server, &["flow", "submit", path, "--json"])));
    let flow_id = created["flow_id"].as_str().expect("flow id").to_owned();
    assert!(created["nodes"]["parse"].is_string(), "{created}");
    // Piped, the id alone, as `ff submit` prints it; `--verbose` adds the nodes.
    let bare = ok(ff(&server, &["flow", "submit", path]));
    assert_eq!(bare.lines().count(), 1, "{bare}");
    assert!(bare.trim().parse::<ff_core::FlowId>().is_ok(), "{bare}");
    let table = ok(ff(&server, &["flow", "submit", path, "--verbose"]));
    assert!(
        table.starts_with("flow ") && table.contains("fetch"),
        "{table}"
    );

    // On a terminal, the table without asking: util-linux `script` gives
    // the command a pseudo-terminal.
    let flows = if std::path::Path::new("/usr/bin/script").exists() {
        let on_tty = Command::new("/usr/bin/script")
            .args([
                "-qec",
                &format!("{} flow submit {path}", env!("CARGO_BIN_EXE_ff")),
                "/dev/null",
            ])
            .env("FF_SERVER", &server.base)
            .env_remove("FF_API_TOKEN")
            .env_remove("FF_NAMESPACE")
            .output()
            .expect("run script");
        let shown = ok(on_tty);
        assert!(
            shown.starts_with("flow ") && shown.contains("fetch"),
            "{shown:?}"
        );
        4
    } else {
        eprintln!("SKIPPED the terminal check: no /usr/bin/script");
        3
    };

    // `ff flow ls` lists the flows, oldest first.
    let listed = ok(ff(&server, &["flow", "ls"]));
    assert!(listed.starts_with("ID "), "{listed}");
    assert_eq!(listed.lines().count(), flows + 1, "{listed}");
    assert!(
        listed
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with(&flow_id)),
        "{listed}"
    );
    let page = json_of(&ok(ff(&server, &["flow", "ls", "--limit", "2", "--json"])));
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2), "{page}");
    assert_eq!(page["items"][0]["nodes"], 2, "{page}");
    assert!(page["next_cursor"].is_string(), "{page}");

    let shown = ok(ff(&server, &["show", &flow_id]));
    assert!(shown.contains("state      running"), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("parse") && l.contains("blocked") && l.ends_with("fetch")),
        "{shown}"
    );
    let cancelled = ok(ff(&server, &["cancel", &flow_id]));
    assert!(cancelled.contains("cancelled flow"), "{cancelled}");
    let shown = json_of(&ok(ff(&server, &["show", &flow_id, "--json"])));
    assert_eq!(shown["state"], "cancelled");
    let running = ok(ff(&server, &["flow", "ls", "--state", "cancelled"]));
    assert_eq!(running.lines().count(), 2, "{running}");

    std::fs::write(&file, "{\"nodes\": 3}").expect("write");
    let err = fails(ff(&server, &["flow", "submit", path]));
    assert!(err.contains("is not a flow spec"), "{err}");
    let cycle = json!({
        "nodes": [
            {"key": "a", "execution": {"lane": "etl", "kind": "k"}},
            {"key": "b", "execution": {"lane": "etl", "kind": "k"}}
        ],
        "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "a"}]
    });
    std::fs::write(&file, cycle.to_string()).expect("write");
    let err = fails(ff(&server, &["flow", "submit", path]));
    assert!(err.contains("cycle"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_clear_line_and_a_failing_exit() {
    let scratch = Scratch::new("cli-errors");
    let server = Server::start(&scratch.path("ff.db"), Some("s3cret"));

    let err = fails_with(7, ff(&server, &["ls"]));
    assert!(err.contains("wants a valid token"), "{err}");
    let listed = ok(ff(&server, &["ls", "--token", "s3cret", "--json"]));
    assert_eq!(json_of(&listed)["items"], json!([]));

    let unknown = "01900000-0000-7000-8000-000000000000";
    let err = fails_with(3, ff(&server, &["show", unknown, "--token", "s3cret"]));
    assert!(err.contains("no execution or flow"), "{err}");
    let err = fails_with(4, ff(&server, &["show", "nope", "--token", "s3cret"]));
    assert!(err.contains("is not an execution or flow id"), "{err}");
    let err = fails_with(
        4,
        ff(
            &server,
            &[
                "submit",
                "--lane",
                "x",
                "--kind",
                "y",
                "--payload",
                "{oops",
                "--token",
                "s3cret",
            ],
        ),
    );
    assert!(err.contains("--payload"), "{err}");
    let err = fails_with(
        4,
        ff(
            &server,
            &[
                "submit", "--lane", "bad lane", "--kind", "y", "--token", "s3cret",
            ],
        ),
    );
    assert!(err.contains("invalid lane"), "{err}");

    let err = fails_with(6, ff_at("http://127.0.0.1:1", &["stats"]));
    assert!(
        err.contains("cannot reach the FlowFabric server at http://127.0.0.1:1"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // A bad command line is the argument parser's usage error.
    fails_with(2, ff(&server, &["submit", "--lane", "x"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_with_json_carry_the_api_code_and_a_distinct_exit() {
    let scratch = Scratch::new("cli-json-errors");
    let server = Server::start(&scratch.path("ff.db"), None);
    let error_of = |stderr: &str| -> serde_json::Value {
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        json_of(stderr)
    };

    let invalid = error_of(&fails_with(
        4,
        ff(
            &server,
            &["submit", "--lane", "bad lane", "--kind", "y", "--json"],
        ),
    ));
    assert_eq!(invalid["code"], "invalid", "{invalid}");
    assert_eq!(invalid["field"], "lane", "{invalid}");
    assert!(
        invalid["message"]
            .as_str()
            .is_some_and(|m| m.contains("lane")),
        "{invalid}"
    );

    let unknown = "01900000-0000-7000-8000-000000000000";
    let missing = error_of(&fails_with(3, ff(&server, &["show", unknown, "--json"])));
    assert_eq!(missing["code"], "not_found", "{missing}");
    assert!(missing.get("field").is_none(), "{missing}");
    let missing = error_of(&fails_with(3, ff(&server, &["cancel", unknown, "--json"])));
    assert_eq!(missing["code"], "not_found", "{missing}");

    let id = ok(ff(&server, &["submit", "--lane", "l", "--kind", "k"]));
    let conflict = error_of(&fails_with(5, ff(&server, &["retry", id.trim(), "--json"])));
    assert_eq!(conflict["code"], "conflict", "{conflict}");

    let down = error_of(&fails_with(
        6,
        ff_at("http://127.0.0.1:1", &["ls", "--json"]),
    ));
    assert_eq!(down["code"], "unavailable", "{down}");

    let authed = Server::start(&scratch.path("authed.db"), Some("s3cret"));
    let denied = error_of(&fails_with(7, ff(&authed, &["stats", "--json"])));
    assert_eq!(denied["code"], "unauthorized", "{denied}");
    let denied = error_of(&fails_with(7, ff(&authed, &["flow", "ls", "--json"])));
    assert_eq!(denied["code"], "unauthorized", "{denied}");

    // The exit codes are documented where a user looks.
    let help = ok(ff(&server, &["--help"]));
    for line in [
        "3  not found",
        "4  invalid",
        "5  conflict",
        "6  server or backend unavailable",
        "7  unauthorised",
    ] {
        assert!(help.contains(line), "`ff --help` lacks {line:?}:\n{help}");
    }
}

/// The README's `ff` session, run as written against a live server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_cli_session_runs() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README");
    let session = readme
        .split("```sh\n# ff session")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README has a ```sh block starting with `# ff session`");
    let scratch = Scratch::new("cli-readme");
    let server = Server::start(&scratch.path("ff.db"), None);
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_ff"))
        .parent()
        .expect("bin dir")
        .to_owned();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", session])
        .env("PATH", path)
        .env("FF_SERVER", &server.base)
        .env_remove("FF_API_TOKEN")
        .env_remove("FF_NAMESPACE")
        .output()
        .expect("run bash");
    let stdout = ok(out);
    assert!(stdout.contains(r#""state":"ready""#), "{stdout}");
    assert!(stdout.contains("state      ready"), "{stdout}");
    assert!(stdout.contains("emails"), "{stdout}");
}
