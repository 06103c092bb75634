//! The client commands (`ff submit`, `flow submit`, `ls`, `show`, `cancel`,
//! `retry`, `stats`) against a real `ff serve`, and the README's CLI session
//! run as written.

mod common;
mod serve_support;

use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use common::Scratch;
use serve_support::Server;

/// Runs `ff ARGS` against `server`; returns the output.
fn ff(server: &Server, args: &[&str]) -> Output {
    ff_at(&server.base, args)
}

fn ff_at(base: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ff"))
        .args(args)
        .env("FF_SERVER", base)
        .env_remove("FF_API_TOKEN")
        .env_remove("FF_NAMESPACE")
        .stdin(Stdio::null())
        .output()
        .expect("run ff")
}

/// Stdout of a successful run.
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Stderr of a failed run.
fn fails(out: Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("utf-8")
}

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

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
    let table = ok(ff(
        &server,
        &[
            "flow",
            "submit",
            scratch.path("flow.json").to_str().unwrap_or_default(),
        ],
    ));
    assert!(
        table.starts_with("flow ") && table.contains("fetch"),
        "{table}"
    );

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

    let err = fails(ff(&server, &["ls"]));
    assert!(err.contains("wants a valid token"), "{err}");
    let listed = ok(ff(&server, &["ls", "--token", "s3cret", "--json"]));
    assert_eq!(json_of(&listed)["items"], json!([]));

    let unknown = "01900000-0000-7000-8000-000000000000";
    let err = fails(ff(&server, &["show", unknown, "--token", "s3cret"]));
    assert!(err.contains("no execution or flow"), "{err}");
    let err = fails(ff(&server, &["show", "nope", "--token", "s3cret"]));
    assert!(err.contains("is not an execution or flow id"), "{err}");
    let err = fails(ff(
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
    ));
    assert!(err.contains("--payload"), "{err}");
    let err = fails(ff(
        &server,
        &[
            "submit", "--lane", "bad lane", "--kind", "y", "--token", "s3cret",
        ],
    ));
    assert!(err.contains("invalid lane"), "{err}");

    let err = fails(ff_at("http://127.0.0.1:1", &["stats"]));
    assert!(
        err.contains("cannot reach the FlowFabric server at http://127.0.0.1:1"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
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
