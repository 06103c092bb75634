//! A worker process killed mid-attempt: its late reports are fenced off
//! (`LeaseLost`) once the lease has run out, and a restart on the same
//! database finishes every execution exactly once.

mod common;

use std::time::Duration;

use common::{
    attempt_end, check_final_state, demo_executions, open, spawn_demo, wait_for_journal,
    wait_success, Journal, Scratch,
};
use ff_core::execution::AttemptEnd;
use ff_core::{ErrorKind, JsonText, LeaseOps, ReadOps};

const COUNT: usize = 300;
const LEASE_MS: u64 = 800;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_completes_after_a_kill_get_lease_lost_and_a_restart_finishes_the_rest() {
    let scratch = Scratch::new("worker-kill");
    let db = scratch.path("ff.db");
    let journal_path = scratch.path("journal.tsv");
    let (db_arg, journal_arg) = (db.display().to_string(), journal_path.display().to_string());
    let lease = LEASE_MS.to_string();
    // Small claims keep the run going in waves, so a kill lands mid-run.
    let args = [
        "--count",
        "300",
        "--work-ms",
        "200",
        "--lease-ms",
        &lease,
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
        j.ends.len() >= 40 && !j.unfinished().is_empty()
    });
    first.kill().expect("SIGKILL the demo");
    first.wait().expect("reap the demo");
    let journal = Journal::read(&journal_path);
    let killed = journal.unfinished();
    assert!(!killed.is_empty(), "the kill cut attempts short");

    // The killed worker "comes back" after its leases ran out and reports.
    tokio::time::sleep(Duration::from_millis(LEASE_MS + 200)).await;
    let backend = open(&db).await;
    let mut lease_lost = 0;
    for handle in &killed {
        let exec = backend
            .get_execution(handle.execution_id)
            .await
            .expect("the execution exists");
        let answer = backend
            .complete(&journal.handle(handle), JsonText::null())
            .await;
        match attempt_end(&exec, handle) {
            // The kill fell after the backend accepted the report and before
            // the journal's end line: a replay answers as the first time did.
            Some(AttemptEnd::Completed) => {
                assert!(answer.is_ok(), "{handle:?}: replay of an accepted complete")
            }
            Some(AttemptEnd::Failed { .. }) => assert!(
                matches!(
                    answer.as_ref().map_err(|e| e.kind()),
                    Err(ErrorKind::LeaseLost | ErrorKind::NotActive)
                ),
                "{handle:?}: complete after an accepted fail answered {answer:?}"
            ),
            _ => {
                assert_eq!(
                    answer.as_ref().map_err(|e| e.kind()).err(),
                    Some(ErrorKind::LeaseLost),
                    "{handle:?}: {answer:?}"
                );
                lease_lost += 1;
            }
        }
    }
    eprintln!(
        "{} attempts killed, {lease_lost} late completes fenced off",
        killed.len()
    );
    assert!(lease_lost > 0, "some late complete was fenced off");
    backend.close().await;

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
