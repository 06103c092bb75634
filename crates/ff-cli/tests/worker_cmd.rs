//! `ff worker -- CMD` against a real `ff serve`: stdout becomes the result,
//! a failing command fails with the tail of its stderr (for good, unless it
//! exits 75 or `--other-exits retry`), `-v` prints a line per attempt, and
//! SIGTERM reaches the running command and hands its execution back.

mod common;
mod serve_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::Scratch;
use serve_support::Server;

/// A running `ff worker`; killed on drop.
struct WorkerProc {
    child: Child,
}

impl WorkerProc {
    fn start(server: &Server, scratch: &Scratch, lane: &str, slots: u32, script: &str) -> Self {
        Self::start_with(server, scratch, lane, slots, &[], script)
    }

    fn start_with(
        server: &Server,
        scratch: &Scratch,
        lane: &str,
        slots: u32,
        flags: &[&str],
        script: &str,
    ) -> Self {
        let out = std::fs::File::create(scratch.path(&format!("worker-{lane}.out"))).expect("out");
        let err = std::fs::File::create(scratch.path(&format!("worker-{lane}.err"))).expect("err");
        let child = Command::new(env!("CARGO_BIN_EXE_ff"))
            .args([
                "worker",
                "--lane",
                lane,
                "--concurrency",
                &slots.to_string(),
            ])
            .args(flags)
            .arg("--")
            .args(["sh", "-c", script])
            .env("FF_SERVER", &server.base)
            .env_remove("FF_API_TOKEN")
            .env_remove("FF_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start ff worker");
        Self { child }
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn terminate(&mut self, scratch: &Scratch, lane: &str) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let stderr = std::fs::read_to_string(scratch.path(&format!("worker-{lane}.err")))
                    .unwrap_or_default();
                assert!(
                    status.success(),
                    "ff worker exited with {status}:\n{stderr}"
                );
                return;
            }
            assert!(Instant::now() < deadline, "ff worker did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn submit(server: &Server, body: Value) -> String {
    let (status, answer) = server.post("/executions", &body).await;
    assert_eq!(status, 201, "{answer}");
    answer["id"].as_str().expect("id").to_owned()
}

/// Polls the execution until `done` holds for it; returns it.
async fn until(server: &Server, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, exec) = server.get(&format!("/executions/{id}")).await;
        assert_eq!(status, 200, "{exec}");
        if done(&exec) {
            return exec;
        }
        assert!(Instant::now() < deadline, "{id} never {what}: {exec}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn terminal(server: &Server, id: &str) -> Value {
    until(server, id, "ended", |e| {
        ["completed", "failed", "cancelled", "skipped"].contains(&e["state"].as_str().unwrap_or(""))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_succeeding_command_returns_its_stdout() {
    let scratch = Scratch::new("worker-ok");
    let server = Server::start(&scratch.path("ff.db"), None);
    let json_id = submit(
        &server,
        json!({"lane": "ok", "kind": "echo", "payload": {"to": "ada"}}),
    )
    .await;
    let text_id = submit(&server, json!({"lane": "ok", "kind": "text"})).await;
    let script = r#"
        if [ "$FF_KIND" = text ]; then echo "hello from attempt $FF_ATTEMPT"; exit 0; fi
        printf '{"id": "%s", "attempt": %s, "payload": %s}\n' "$FF_EXECUTION_ID" "$FF_ATTEMPT" "$(cat)"
    "#;
    let mut worker = WorkerProc::start(&server, &scratch, "ok", 2, script);

    let exec = terminal(&server, &json_id).await;
    assert_eq!(exec["state"], "completed", "{exec}");
    assert_eq!(
        exec["result"],
        json!({"id": json_id, "attempt": 1, "payload": {"to": "ada"}})
    );
    let exec = terminal(&server, &text_id).await;
    assert_eq!(exec["state"], "completed", "{exec}");
    assert_eq!(exec["result"], json!("hello from attempt 1"));
    worker.terminate(&scratch, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_fails_with_its_stderr_tail() {
    let scratch = Scratch::new("worker-fail");
    let server = Server::start(&scratch.path("ff.db"), None);
    let id = submit(
        &server,
        json!({"lane": "bad", "kind": "noisy", "retry": {"max_attempts": 1}}),
    )
    .await;
    // About 9 KiB of stderr: only its end is kept.
    let script = r#"
        i=0; while [ $i -lt 1000 ]; do echo "line-$i" >&2; i=$((i+1)); done
        echo "not a result"; exit 3
    "#;
    let mut worker = WorkerProc::start(&server, &scratch, "bad", 1, script);

    let exec = terminal(&server, &id).await;
    assert_eq!(exec["state"], "failed", "{exec}");
    assert_eq!(exec["result"], Value::Null);
    let error = exec["error"].as_str().expect("error");
    assert!(error.contains("exit status: 3"), "{error}");
    assert!(error.ends_with("line-999"), "{error}");
    assert!(!error.contains("line-5\n"), "the head of stderr is dropped");
    assert!(error.len() <= 4096 + 100, "{} bytes", error.len());
    worker.terminate(&scratch, "bad");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_reaches_the_command_and_releases_its_lease() {
    let scratch = Scratch::new("worker-term");
    let server = Server::start(&scratch.path("ff.db"), None);
    let log = scratch.path("term.log");
    let id = submit(&server, json!({"lane": "long", "kind": "sleep"})).await;
    let script = format!(
        r#"trap "echo got-term >> {log}; exit 1" TERM; echo started >> {log}; sleep 30 & wait"#,
        log = log.display()
    );
    // One slot, the default: no claim of this worker is in flight to take
    // the execution back as soon as it is released.
    let mut worker = WorkerProc::start(&server, &scratch, "long", 1, &script);

    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("started")
    {
        assert!(Instant::now() < deadline, "the command never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    worker.terminate(&scratch, "long");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopping took {:?}",
        started.elapsed()
    );
    let log = std::fs::read_to_string(&log).expect("log");
    assert!(
        log.contains("got-term"),
        "the command never saw SIGTERM: {log:?}"
    );

    // Handed back at once: ready, its one attempt released, not used up.
    let (_, exec) = server.get(&format!("/executions/{id}")).await;
    assert_eq!(exec["state"], "ready", "{exec}");
    assert_eq!(exec["attempts"].as_array().map(Vec::len), Some(1), "{exec}");
    assert_eq!(exec["attempts"][0]["end"], "released", "{exec}");
    let claimed = server.claim("long", 1, 1000).await;
    assert_eq!(claimed.len(), 1, "claimable at once");
    assert_eq!(
        claimed[0]["handle"]["attempt"], 1,
        "the attempt was not used up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_an_execution_stops_its_command() {
    let scratch = Scratch::new("worker-cancel");
    let server = Server::start(&scratch.path("ff.db"), None);
    let log = scratch.path("cancel.log");
    // A short lease: the worker renews, and hears the cancel, every 300 ms.
    let id = submit(
        &server,
        json!({"lane": "doomed", "kind": "sleep", "lease_ms": 900}),
    )
    .await;
    let script = format!(
        r#"trap "echo got-term >> {log}; exit 1" TERM; echo started >> {log}; sleep 30 & wait"#,
        log = log.display()
    );
    let mut worker = WorkerProc::start(&server, &scratch, "doomed", 1, &script);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !read().contains("started") {
        assert!(Instant::now() < deadline, "the command never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, answer) = server
        .post(&format!("/executions/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200, "{answer}");
    while !read().contains("got-term") {
        assert!(
            Instant::now() < deadline,
            "the command never heard of the cancel"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exec = terminal(&server, &id).await;
    assert_eq!(exec["state"], "cancelled", "{exec}");
    worker.terminate(&scratch, "doomed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_75_retries_and_other_exits_fail_for_good() {
    let scratch = Scratch::new("worker-exits");
    let server = Server::start(&scratch.path("ff.db"), None);
    let fast = json!({"max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 10});
    let temp = submit(
        &server,
        json!({"lane": "exits", "kind": "temp", "retry": fast}),
    )
    .await;
    let broken = submit(
        &server,
        json!({"lane": "exits", "kind": "broken", "retry": fast}),
    )
    .await;
    // `temp` asks for a retry on its first attempt and then succeeds;
    // `broken` exits 3, which fails it at once though attempts remain.
    let script = r#"
        if [ "$FF_KIND" = temp ] && [ "$FF_ATTEMPT" = 1 ]; then echo "busy" >&2; exit 75; fi
        if [ "$FF_KIND" = broken ]; then echo "bad input" >&2; exit 3; fi
        echo done
    "#;
    let mut worker = WorkerProc::start_with(&server, &scratch, "exits", 1, &["-v"], script);

    let exec = terminal(&server, &temp).await;
    assert_eq!(exec["state"], "completed", "{exec}");
    assert_eq!(exec["attempt"], 2, "{exec}");
    let exec = terminal(&server, &broken).await;
    assert_eq!(exec["state"], "failed", "{exec}");
    assert_eq!(
        exec["attempt"], 1,
        "failed for good on the first attempt: {exec}"
    );
    assert!(
        exec["error"]
            .as_str()
            .is_some_and(|e| e.contains("bad input")),
        "{exec}"
    );
    worker.terminate(&scratch, "exits");

    // One line per attempt with -v.
    let log = std::fs::read_to_string(scratch.path("worker-exits.err")).expect("log");
    let line = |id: &str, attempt: u32, what: &str| {
        log.lines()
            .any(|l| l.starts_with(id) && l.contains(&format!("attempt {attempt}: {what}")))
    };
    assert!(line(&temp, 1, "failed (retryable)"), "{log}");
    assert!(line(&temp, 2, "completed"), "{log}");
    assert!(line(&broken, 1, "failed (permanent)"), "{log}");
    assert!(
        log.contains("bad input"),
        "the line carries the error: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_exits_retry_makes_every_failure_retryable() {
    let scratch = Scratch::new("worker-retry-all");
    let server = Server::start(&scratch.path("ff.db"), None);
    let id = submit(
        &server,
        json!({"lane": "flaky", "kind": "k",
               "retry": {"max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 10}}),
    )
    .await;
    let script = r#"if [ "$FF_ATTEMPT" -lt 3 ]; then exit 1; fi; echo ok"#;
    let mut worker = WorkerProc::start_with(
        &server,
        &scratch,
        "flaky",
        1,
        &["--other-exits", "retry"],
        script,
    );
    let exec = terminal(&server, &id).await;
    assert_eq!(exec["state"], "completed", "{exec}");
    assert_eq!(exec["attempt"], 3, "{exec}");
    worker.terminate(&scratch, "flaky");

    // The convention is in `ff worker --help`.
    let help = Command::new(env!("CARGO_BIN_EXE_ff"))
        .args(["worker", "--help"])
        .output()
        .expect("ff worker --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("75") && help.contains("--other-exits"),
        "{help}"
    );
}
