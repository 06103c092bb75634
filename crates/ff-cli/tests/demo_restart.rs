//! The whole `ff demo` process killed mid-run and started again on the same
//! database: it re-finds its executions by idempotency key, the engine
//! expires the dead process's leases, and every execution finishes exactly
//! once.

mod common;

use std::time::Duration;

use common::{
    check_final_state, demo_executions, open, spawn_demo, wait_for_journal, wait_success, Journal,
    Scratch,
};
use ff_backend_sqlite::{SqliteBackend, SqliteConfig};
use ff_core::ErrorKind;

const COUNT: usize = 300;

/// Executions the demo makes fail on purpose: they never complete.
const FAILING: usize = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_demo_resumes_and_finishes_every_execution_once() {
    let scratch = Scratch::new("demo-restart");
    let db = scratch.path("ff.db");
    let journal_path = scratch.path("journal.tsv");
    let (db_arg, journal_arg) = (db.display().to_string(), journal_path.display().to_string());
    let args = [
        "--count",
        "300",
        "--work-ms",
        "100",
        "--lease-ms",
        "800",
        "--journal",
        &journal_arg,
        "--db",
        &db_arg,
        "--workers",
        "2",
        "--claim-batch",
        "10",
    ];

    let mut first = spawn_demo(&scratch, "first", &args);
    wait_for_journal(&journal_path, Duration::from_secs(30), |j| {
        j.ends.len() >= 30
    });

    // While the demo runs, the database is its alone.
    let refused = SqliteBackend::open(SqliteConfig::new(&db))
        .await
        .map(|_| ())
        .expect_err("the file is in use");
    assert_eq!(refused.kind(), ErrorKind::Conflict);
    assert!(refused.to_string().contains("in use by pid"), "{refused}");

    first.kill().expect("SIGKILL the demo");
    first.wait().expect("reap the demo");
    let at_kill = Journal::read(&journal_path);
    let killed = at_kill.unfinished();
    eprintln!("{} attempts killed", killed.len());
    assert!(
        at_kill.accepted_completes().len() < COUNT - FAILING,
        "the kill landed while work remained"
    );

    let second = spawn_demo(&scratch, "second", &args);
    let stdout = wait_success(second, &scratch, "second", Duration::from_secs(45));
    assert!(
        stdout.contains("resumed"),
        "the restart re-found its executions:\n{stdout}"
    );

    let journal = Journal::read(&journal_path);
    let backend = open(&db).await;
    let execs = demo_executions(&backend).await;
    backend.close().await;
    check_final_state(&execs, &journal, &killed, COUNT);
}
