//! Two `ff demo` processes on one Postgres schema (or one Valkey key
//! prefix) share one workload: both
//! submit the same 300 executions (idempotency keys make them one set) and
//! both claim from the lane. One is killed with SIGKILL mid-run; the other's
//! engine expires the dead process's leases and finishes everything. The
//! journals of both and the database then show every execution with one
//! terminal state and one accepted `complete`, none lost, none run twice to
//! completion. As `postgres::*`, `valkey::*` and `valkey_cluster::*`, each
//! skipped (loudly) without `FF_TEST_POSTGRES_URL`, `FF_TEST_REDIS_URL` or
//! `FF_TEST_REDIS_CLUSTER_URL`.

mod common;

use std::time::Duration;

use common::{
    check_final_state, demo_executions, spawn_demo_with_env, wait_for_journal, wait_success,
    AttemptKey, Journal, Scratch,
};
use ff_backend_valkey::{ThrowawayPrefix, ValkeyBackend, ValkeyConfig};

const COUNT: usize = 300;

/// Executions the demo makes fail on purpose: they never complete.
const FAILING: usize = 1;

mod postgres {
    use ff_backend_postgres::{PostgresBackend, PostgresConfig, ThrowawaySchema};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_engines_share_a_workload_and_survive_a_kill() {
        let Some(url) = ff_testkit::harness::server_url("FF_TEST_POSTGRES_URL") else {
            return;
        };
        let scratch_schema = ThrowawaySchema::new(&url);
        let schema = scratch_schema.name().to_owned();
        let (journal, killed) = super::share_and_kill(&url, &[("FF_POSTGRES_SCHEMA", &schema)]);
        let backend = PostgresBackend::connect(PostgresConfig::new(&url).schema(&schema))
            .await
            .expect("connect");
        let execs = super::demo_executions(&backend).await;
        backend.close().await;
        super::check_final_state(&execs, &journal, &killed, super::COUNT);
    }
}

mod valkey {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_engines_share_a_workload_and_survive_a_kill() {
        super::on_valkey("FF_TEST_REDIS_URL").await;
    }
}

mod valkey_cluster {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_engines_share_a_workload_and_survive_a_kill() {
        super::on_valkey("FF_TEST_REDIS_CLUSTER_URL").await;
    }
}

/// The Valkey body, on the server (or cluster) that `var` names, under a
/// key prefix of its own.
async fn on_valkey(var: &str) {
    let Some(url) = ff_testkit::harness::server_url(var) else {
        return;
    };
    let scratch_prefix = ThrowawayPrefix::new(&url);
    let prefix = scratch_prefix.name().to_owned();
    let (journal, killed) = share_and_kill(&url, &[("FF_REDIS_PREFIX", &prefix)]);
    let backend = ValkeyBackend::connect(ValkeyConfig::new(&url).prefix(&prefix))
        .await
        .expect("connect");
    let execs = demo_executions(&backend).await;
    backend.close().await;
    check_final_state(&execs, &journal, &killed, COUNT);
}

/// Runs the two demos on the database at `url` (placed by `env`), kills
/// the first once both are working and waits for the second to finish;
/// the merged journal and the attempts the kill cut short.
fn share_and_kill(url: &str, env: &[(&str, &str)]) -> (Journal, Vec<AttemptKey>) {
    let scratch = Scratch::new("two-processes");
    let (journal_a, journal_b) = (scratch.path("a.tsv"), scratch.path("b.tsv"));
    let args = |journal: &std::path::Path| -> Vec<String> {
        [
            "--count",
            "300",
            "--work-ms",
            "20",
            "--lease-ms",
            "1000",
            "--workers",
            "2",
            "--claim-batch",
            "10",
            "--no-flow",
            "--db",
            url,
            "--journal",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([journal.display().to_string()])
        .collect()
    };
    let (args_a, args_b) = (args(&journal_a), args(&journal_b));
    let mut first = spawn_demo_with_env(&scratch, "a", &args_a, env);
    let second = spawn_demo_with_env(&scratch, "b", &args_b, env);

    // Both are working before one of them dies.
    wait_for_journal(&journal_a, Duration::from_secs(60), |j| j.ends.len() >= 20);
    wait_for_journal(&journal_b, Duration::from_secs(60), |j| j.ends.len() >= 20);
    first.kill().expect("SIGKILL the first demo");
    first.wait().expect("reap the first demo");
    let killed = Journal::read(&journal_a).unfinished();
    eprintln!("{} attempts killed", killed.len());
    let at_kill = Journal::merge([Journal::read(&journal_a), Journal::read(&journal_b)]);
    assert!(
        at_kill.accepted_completes().len() < COUNT - FAILING,
        "the kill landed while work remained"
    );

    wait_success(second, &scratch, "b", Duration::from_secs(90));

    let journal = Journal::merge([Journal::read(&journal_a), Journal::read(&journal_b)]);
    (journal, killed)
}
