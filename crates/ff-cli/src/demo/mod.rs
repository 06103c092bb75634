//! `ff demo`: opens the embedded SQLite database, starts the engine and a
//! pool of in-process workers, submits a batch of no-op executions (a few
//! fail and are retried, one runs out of attempts), waits until every one is
//! terminal and prints what happened and how fast.
//!
//! Rerunning on the same database resumes: submission finds the executions
//! by idempotency key, the engine expires the leases a killed run held, and
//! the workers finish the rest.
//!
//! - `submit`: the idempotent batch submission.
//! - `worker`: the claim loops and the demo handler.
//! - `journal`: the optional fsynced attempt journal the crash tests read.
//! - `progress`: the lane counts and the progress bar.
//! - `summary`: the closing table.

mod flow;
mod journal;
mod progress;
mod submit;
mod summary;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use ff_engine::{shutdown, Engine, EngineConfig};
use tracing::Instrument;

use crate::backend::{Backend, Placement, SyncMode};
use journal::Journal;
use summary::Summary;
use worker::{FailurePlan, WorkerPool};

/// The lane the demo submits to and claims from.
pub const LANE: &str = "demo";
/// The handler name of the demo's executions.
pub const KIND: &str = "demo.noop";

/// `ff demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many executions to submit.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// The database: `sqlite://PATH`, a plain path, or `postgres://...`.
    #[arg(
        long = "database-url",
        visible_alias = "db",
        env = "FF_DATABASE_URL",
        default_value = ".flowfabric/ff.db"
    )]
    database_url: String,
    /// Concurrent claim loops.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    workers: u32,
    /// Executions claimed per call, then run concurrently.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    claim_batch: u32,
    /// Every K-th execution fails its first attempt and succeeds on the retry,
    /// and execution 0 fails every attempt; 0 turns failures off.
    #[arg(long, default_value_t = 100)]
    fail_every: u64,
    /// Lease length of each execution, in milliseconds.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    lease_ms: u64,
    /// Simulated work per attempt, in milliseconds (holds the lease).
    #[arg(long, default_value_t = 0)]
    work_ms: u64,
    /// Append one fsynced line per attempt start and end to FILE.
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// SQLite durability: `full` survives power loss, `normal` only crashes.
    #[arg(long, value_enum, default_value_t = SyncMode::Full)]
    synchronous: SyncMode,
    #[command(flatten)]
    placement: Placement,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Skip the flow (fan-out of 100, fan-in, a diamond with an on_failure
    /// branch) that runs after the batch.
    #[arg(long)]
    no_flow: bool,
}

/// Runs the demo; exit code 130 when interrupted.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let journal = args.journal.as_deref().map(Journal::open).transpose()?;
    let backend = Backend::open(&args.database_url, args.synchronous, &args.placement).await?;
    let span = tracing::info_span!(
        "demo",
        db = %crate::db_url::redacted(&args.database_url),
        count = args.count
    );
    let result = run_with(&args, backend.clone(), journal)
        .instrument(span)
        .await;
    // Drains the writer so every acknowledged write is on disk, then frees
    // the file for the next process.
    backend.close().await;
    result
}

async fn run_with(
    args: &DemoArgs,
    opened: Backend,
    journal: Option<Journal>,
) -> anyhow::Result<ExitCode> {
    let backend = opened.engine.clone();
    let engine = Engine::start(
        backend.clone(),
        opened.completions.clone(),
        EngineConfig::default(),
    );
    let (interrupt_trigger, mut interrupt) = shutdown::channel();
    crate::signals::spawn_handler(interrupt_trigger);
    let (stop_workers, workers_signal) = shutdown::channel();

    let before = progress::lane_counts(&*backend).await?;
    let bar = progress::bar(args.count, args.quiet)?;
    bar.set_position(before.terminal);
    bar.reset_eta();

    let started = Instant::now();
    let pool = Arc::new(WorkerPool {
        backend: backend.clone(),
        plan: FailurePlan {
            fail_every: args.fail_every,
        },
        work: Duration::from_millis(args.work_ms),
        journal,
        batch: args.claim_batch,
        tally: Default::default(),
    });
    let workers = pool.spawn(args.workers as usize, &workers_signal);

    bar.set_message("submitting");
    let submission = tokio::select! {
        submission = submit::submit_all(&*backend, args.count, args.lease_ms, &interrupt) => submission,
        never = progress::follow(&bar, before, &pool.tally) => match never {},
    };
    bar.set_message("");
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "submission finished"
    );
    let finished = match submission {
        Ok(submission) if !submission.interrupted => {
            let lane_total = before.terminal + before.unfinished + submission.created;
            progress::wait_until_done(
                &*backend,
                &bar,
                before,
                lane_total,
                &pool.tally,
                &mut interrupt,
            )
            .await
            .map(|done| done.map(|counts| (submission, counts)))
        }
        Ok(_) => Ok(None),
        Err(error) => Err(error),
    };
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let flow = match &finished {
        Ok(Some(_)) if !args.no_flow => flow::run(backend.clone(), &mut interrupt).await,
        _ => Ok(None),
    };

    // Running handlers finish and report before the engine and backend stop.
    stop_workers.trigger();
    for worker in workers {
        if let Err(error) = worker.await {
            tracing::error!(%error, "worker task failed");
        }
    }
    let stats = engine.shutdown().await;
    tracing::debug!(?stats, tally = ?pool.tally, "demo stopped");

    let Some((submission, counts)) = finished? else {
        let counts = progress::lane_counts(&*backend).await?;
        eprintln!(
            "interrupted: {} of the demo lane's executions are terminal, {} unfinished; run again to resume",
            counts.terminal, counts.unfinished
        );
        return Ok(ExitCode::from(130));
    };
    let outcomes = summary::collect(&*backend, &submission.ids).await?;
    let summary = Summary {
        outcomes,
        finished_here: counts.terminal.saturating_sub(before.terminal),
        elapsed,
    };
    if submission.created < args.count {
        println!(
            "resumed: {} of {} executions were already submitted",
            args.count - submission.created,
            args.count
        );
    }
    print!("{}", summary.render());
    match flow? {
        Some((view, took)) => print!("{}", flow::render(&view, took)),
        None if !args.no_flow => {
            eprintln!("interrupted before the demo flow finished; run again to resume");
            return Ok(ExitCode::from(130));
        }
        None => {}
    }
    Ok(ExitCode::SUCCESS)
}
