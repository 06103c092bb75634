//! `ff submit`'s execution options, its batches from a file, and
//! `ff ls --newest`, against a real `ff serve`.

mod cli_support;
mod common;
mod serve_support;

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use cli_support::{fails_with, ff, json_of, ok};
use common::Scratch;
use serve_support::Server;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn execution(server: &Server, id: &str) -> Value {
    let (status, exec) = server.get(&format!("/executions/{id}")).await;
    assert_eq!(status, 200, "{exec}");
    exec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_options_reach_the_execution() {
    let scratch = Scratch::new("submit-options");
    let server = Server::start(&scratch.path("ff.db"), None);
    let before = now_ms();
    let id = ok(ff(
        &server,
        &[
            "submit",
            "--lane",
            "emails",
            "--kind",
            "send",
            "--delay",
            "1h",
            "--max-attempts",
            "7",
            "--backoff",
            "2s,1m",
            "--lease-ms",
            "4000",
            "--deadline",
            "2h",
            "--tag",
            "team=growth",
            "--tag",
            "campaign=spring",
            "--capability",
            "smtp",
            "--capability",
            "eu",
        ],
    ));
    let exec = execution(&server, id.trim()).await;
    assert_eq!(exec["state"], "scheduled", "{exec}");
    let run_at = exec["run_at"].as_i64().expect("run_at");
    assert!(
        (before + 3_600_000..before + 3_660_000).contains(&run_at),
        "{exec}"
    );
    let deadline = exec["deadline"].as_i64().expect("deadline");
    assert!(
        (before + 7_200_000..before + 7_260_000).contains(&deadline),
        "{exec}"
    );
    assert_eq!(exec["attempts_allowed"], 7, "{exec}");
    assert_eq!(exec["retry"]["max_attempts"], 7, "{exec}");
    assert_eq!(exec["retry"]["initial_backoff_ms"], 2000, "{exec}");
    assert_eq!(exec["retry"]["max_backoff_ms"], 60_000, "{exec}");
    assert_eq!(exec["lease_ms"], 4000, "{exec}");
    assert_eq!(
        exec["tags"],
        json!({"team": "growth", "campaign": "spring"}),
        "{exec}"
    );
    let mut caps: Vec<&str> = exec["capabilities"]
        .as_array()
        .expect("capabilities")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    caps.sort_unstable();
    assert_eq!(caps, ["eu", "smtp"], "{exec}");

    // An absolute time, in RFC 3339 and as `ff` prints times.
    let id = ok(ff(
        &server,
        &[
            "submit",
            "--lane",
            "emails",
            "--kind",
            "send",
            "--run-at",
            "2030-01-02T03:04:05Z",
        ],
    ));
    let exec = execution(&server, id.trim()).await;
    assert_eq!(exec["run_at"], 1_893_553_445_000_i64, "{exec}");
    let shown = ok(ff(&server, &["show", id.trim()]));
    assert!(
        shown.contains("run at     2030-01-02 03:04:05.000"),
        "{shown}"
    );

    let bad = |args: &[&str]| {
        let mut all = vec!["submit", "--lane", "l", "--kind", "k"];
        all.extend_from_slice(args);
        fails_with(2, ff(&server, &all))
    };
    assert!(bad(&["--delay", "5"]).contains("not a duration"));
    assert!(bad(&["--tag", "nokey"]).contains("KEY=VALUE"));
    assert!(bad(&["--run-at", "2099-02-30T00:00:00Z"]).contains("no such date"));
    assert!(bad(&["--run-at", "1m", "--delay", "1m"]).contains("cannot be used with"));
    // What the server refuses is an invalid-input exit, naming the field.
    let err = fails_with(
        4,
        ff(
            &server,
            &[
                "submit",
                "--lane",
                "l",
                "--kind",
                "k",
                "--max-attempts",
                "0",
                "--json",
            ],
        ),
    );
    assert_eq!(json_of(&err)["field"], "retry.max_attempts", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_file_sends_a_batch_and_prints_one_id_per_line() {
    let scratch = Scratch::new("submit-file");
    let server = Server::start(&scratch.path("ff.db"), None);

    let array = scratch.path("batch.json");
    let reqs = json!([
        {"lane": "etl", "kind": "a", "payload": {"n": 1}},
        {"lane": "etl", "kind": "b", "priority": 5, "idempotency_key": "b-1"},
        {"lane": "etl", "kind": "c", "tags": {"x": "y"}}
    ]);
    std::fs::write(&array, reqs.to_string()).expect("write");
    let out = ok(ff(
        &server,
        &["submit", "--file", array.to_str().expect("path")],
    ));
    let ids: Vec<&str> = out.lines().collect();
    assert_eq!(ids.len(), 3, "{out}");
    for (id, kind) in ids.iter().zip(["a", "b", "c"]) {
        assert_eq!(
            execution(&server, id).await["kind"],
            kind,
            "in the file's order"
        );
    }
    assert_eq!(execution(&server, ids[0]).await["payload"], json!({"n": 1}));

    // JSON lines, blank lines skipped; --json prints one answer per line.
    let lines = scratch.path("batch.jsonl");
    std::fs::write(
        &lines,
        "{\"lane\": \"etl\", \"kind\": \"b\", \"idempotency_key\": \"b-1\"}\n\n{\"lane\": \"etl\", \"kind\": \"d\"}\n",
    )
    .expect("write");
    let out = ok(ff(
        &server,
        &["submit", "--file", lines.to_str().expect("path"), "--json"],
    ));
    let answers: Vec<Value> = out.lines().map(json_of).collect();
    assert_eq!(answers.len(), 2, "{out}");
    assert_eq!(
        answers[0]["id"], ids[1],
        "the idempotency key found the first"
    );
    assert_eq!(answers[0]["created"], false);
    assert_eq!(
        answers[0]["conflicting_spec"], true,
        "priority 5 was left out"
    );
    assert_eq!(answers[1]["created"], true);

    // A bad line is named before anything is sent.
    std::fs::write(
        &lines,
        "{\"lane\": \"etl\", \"kind\": \"e\"}\n{\"lane\": 3}\n",
    )
    .expect("write");
    let err = fails_with(
        4,
        ff(
            &server,
            &["submit", "--file", lines.to_str().expect("path")],
        ),
    );
    assert!(err.contains("line 2"), "{err}");
    // The batch is atomic: one invalid request and none is submitted.
    std::fs::write(
        &array,
        json!([{"lane": "etl", "kind": "f"}, {"lane": "bad lane", "kind": "g"}]).to_string(),
    )
    .expect("write");
    fails_with(
        4,
        ff(
            &server,
            &["submit", "--file", array.to_str().expect("path")],
        ),
    );
    let page = json_of(&ok(ff(&server, &["ls", "--json"])));
    assert_eq!(page["items"].as_array().map(Vec::len), Some(4), "{page}");
    // --file replaces the per-execution flags.
    let err = fails_with(
        2,
        ff(
            &server,
            &["submit", "--file", "x.json", "--lane", "etl", "--kind", "k"],
        ),
    );
    assert!(err.contains("cannot be used with"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_newest_lists_the_latest_first() {
    let scratch = Scratch::new("ls-newest");
    let server = Server::start(&scratch.path("ff.db"), None);
    let batch: Vec<Value> = (0..1205)
        .map(|n| json!({"lane": if n % 2 == 0 { "even" } else { "odd" }, "kind": format!("k{n}")}))
        .collect();
    let file = scratch.path("many.json");
    std::fs::write(&file, Value::Array(batch).to_string()).expect("write");
    let ids: Vec<String> = ok(ff(
        &server,
        &["submit", "--file", file.to_str().expect("path")],
    ))
    .lines()
    .map(str::to_owned)
    .collect();
    assert_eq!(ids.len(), 1205, "two batches");

    let page = json_of(&ok(ff(
        &server,
        &["ls", "--newest", "--limit", "3", "--json"],
    )));
    let newest: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(newest, [&ids[1204], &ids[1203], &ids[1202]]);
    assert_eq!(page["next_cursor"], Value::Null);

    let table = ok(ff(
        &server,
        &["ls", "--newest", "--limit", "2", "--lane", "odd"],
    ));
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows[0].starts_with(&ids[1203]), "{table}");
    assert!(rows[1].starts_with(&ids[1201]), "{table}");
    fails_with(4, ff(&server, &["ls", "--newest", "--limit", "0"]));
    fails_with(2, ff(&server, &["ls", "--newest", "--cursor", "x"]));
}
