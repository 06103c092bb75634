//! One owner per database file, schema version checks, and durability across
//! a close and reopen.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ff_backend_sqlite::{SqliteBackend, SqliteConfig, Synchronous};
use ff_core::{
    ClaimRequest, ErrorKind, ExecutionOps, JsonText, LeaseOps, MaintenanceOps, ManualClock,
    ReadOps, State, SubmitRequest,
};
use ff_testkit::TempDir;

/// Set for the child process of `second_process_gets_conflict_naming_holder`.
const HOLDER_ENV: &str = "FF_LOCK_HOLDER_DB";

async fn open(path: &std::path::Path) -> Result<SqliteBackend, ff_core::EngineError> {
    SqliteBackend::open(SqliteConfig::new(path).clock(Arc::new(ManualClock::default()))).await
}

fn job() -> SubmitRequest {
    SubmitRequest::new("a", "job", JsonText::unchecked(r#"{"keep": "me"}"#))
}

#[tokio::test]
async fn second_open_in_process_gets_conflict_naming_our_pid() {
    let dir = TempDir::new("sqlite-lock");
    let path = dir.path().join("ff.db");
    let first = open(&path).await.expect("first open");
    let err = open(&path).await.expect_err("second open must fail");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("database in use by pid {}", std::process::id())),
        "{err}"
    );
    first.close().await;
    let again = open(&path).await.expect("open after close");
    again.close().await;
}

/// Runs only as the child of `second_process_gets_conflict_naming_holder`:
/// holds the database until its stdin closes (at most 30 s).
#[tokio::test]
async fn lock_holder_child() {
    let Ok(path) = std::env::var(HOLDER_ENV) else {
        return;
    };
    let backend = open(std::path::Path::new(&path))
        .await
        .expect("holder open");
    // libtest prints "test lock_holder_child ... " first, on the same line.
    println!("holding");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = tx.send(());
    });
    tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
        .await
        .expect("wait for stdin")
        .ok();
    backend.close().await;
}

#[tokio::test]
async fn second_process_gets_conflict_naming_holder() {
    let dir = TempDir::new("sqlite-lock-proc");
    let path = dir.path().join("ff.db");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "lock_holder_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLDER_ENV, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn holder");
    let stdout = child.stdout.take().expect("child stdout");
    // Read the child's output to the end, so that its last lines never hit a
    // closed pipe; report when it holds the database.
    let (held, holding) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut held = Some(held);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.trim_end().ends_with("holding") {
                if let Some(held) = held.take() {
                    let _ = held.send(());
                }
            }
        }
    });
    let holding = holding.await.is_ok();
    assert!(holding, "the holder never said it holds the database");

    let err = open(&path)
        .await
        .expect_err("open while another process holds it");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("database in use by pid {}", child.id())),
        "{err}"
    );

    drop(child.stdin.take());
    let status = child.wait().expect("holder exits");
    assert!(status.success(), "holder failed: {status}");
    let backend = open(&path).await.expect("open once the holder is gone");
    backend.close().await;
}

#[tokio::test]
async fn newer_schema_version_is_refused() {
    let dir = TempDir::new("sqlite-schema");
    let path = dir.path().join("ff.db");
    open(&path).await.expect("create").close().await;
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .expect("bump version");
    }
    let err = open(&path)
        .await
        .expect_err("a newer schema must be refused");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        err.to_string()
            .contains("database schema version 99 is newer than this build supports"),
        "{err}"
    );
}

#[tokio::test]
async fn data_survives_close_and_reopen() {
    let dir = TempDir::new("sqlite-reopen");
    let path = dir.path().join("nested").join("ff.db");
    let backend = open(&path).await.expect("open creates parent dirs");
    let done = backend.submit(job()).await.expect("submit").id;
    let waiting = backend.submit(job()).await.expect("submit").id;
    let claimed = backend
        .claim(&ClaimRequest::new(["a"], "w"))
        .await
        .expect("claim")
        .remove(0);
    assert_eq!(claimed.handle.execution_id, done);
    backend
        .complete(&claimed.handle, JsonText::unchecked(r#"{ "ok" : true }"#))
        .await
        .expect("complete");
    let before = backend.get_execution(done).await.expect("get");
    backend.close().await;

    let err = backend.submit(job()).await.expect_err("closed");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let err = backend.get_execution(done).await.expect_err("closed");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    backend.close().await;

    let reopened = open(&path).await.expect("reopen");
    let after = reopened.get_execution(done).await.expect("get");
    assert_eq!(after, before);
    assert_eq!(
        after.result.as_ref().map(JsonText::as_str),
        Some(r#"{ "ok" : true }"#),
        "results are stored verbatim"
    );
    assert_eq!(after.payload.as_str(), r#"{"keep": "me"}"#);
    let still = reopened.get_execution(waiting).await.expect("get");
    assert_eq!(still.state, State::Ready);
    let outbox = reopened
        .undispatched_completions(0, 10)
        .await
        .expect("outbox");
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].execution_id, done);
    reopened.close().await;
}

#[tokio::test]
async fn normal_synchronous_round_trip() {
    let dir = TempDir::new("sqlite-normal");
    let path = dir.path().join("ff.db");
    let config = SqliteConfig::new(&path)
        .synchronous(Synchronous::Normal)
        .clock(Arc::new(ManualClock::default()));
    let backend = SqliteBackend::open(config).await.expect("open");
    let id = backend.submit(job()).await.expect("submit").id;
    backend.close().await;
    let reopened = open(&path).await.expect("reopen");
    assert_eq!(
        reopened.get_execution(id).await.expect("get").state,
        State::Ready
    );
    reopened.close().await;
}
