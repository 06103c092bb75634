//! `ff worker --lane L -- CMD ARGS...`: an `ff-sdk` worker over HTTP whose
//! one handler runs CMD for every execution it claims (see `child` for what
//! its exit code means).
//!
//! The first Ctrl-C or SIGTERM stops claiming and forwards SIGTERM to every
//! running command; a command that then exits non-zero has its execution
//! handed back (lease released, attempt not used up), one that exits 0 is
//! completed. Commands still running when the shutdown grace ends are
//! killed and their leases released. A second signal kills the commands and
//! exits at once.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use ff_sdk::{JobContext, Worker};

use super::child::{self, Groups, OtherExits};
use super::table::duration;
use super::ServerArgs;

/// `ff worker` options.
#[derive(Debug, Args)]
#[command(after_help = "\
CMD's exit code decides the outcome:
  0       completed; stdout is the result (JSON as written, other text as a string)
  75      failed, retryable (EX_TEMPFAIL): retried after the backoff while attempts remain
  signal  failed, retryable (killed, e.g. by the OOM killer)
  other   failed for good; with --other-exits retry, retryable like 75
A failure's error is the last 4 KiB of CMD's stderr.")]
pub struct WorkerArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// A lane to claim from (repeat for several).
    #[arg(long = "lane", required = true)]
    lanes: Vec<String>,
    /// Commands running at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// A capability this worker offers (repeat for several).
    #[arg(long = "capability")]
    capabilities: Vec<String>,
    /// The id recorded on each attempt.
    #[arg(long, env = "FF_WORKER_ID")]
    worker_id: Option<String>,
    /// What an exit other than 0 and 75 means: `permanent` fails the
    /// execution for good, `retry` fails the attempt retryably.
    #[arg(long, value_enum, env = "FF_WORKER_OTHER_EXITS", default_value_t = OtherExits::Permanent)]
    other_exits: OtherExits,
    /// Print a line on stderr for each attempt: id, kind, attempt, outcome
    /// and how long it took.
    #[arg(long, short)]
    verbose: bool,
    /// Seconds running commands get to finish after a stop signal.
    #[arg(long, env = "FF_SHUTDOWN_GRACE", default_value_t = 30.0)]
    shutdown_grace: f64,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    check_runnable(&args.command[0])?;
    // Listening before the first claim, so no signal finds the default action.
    let mut signals = StopSignals::listen()?;
    if !(args.shutdown_grace.is_finite() && args.shutdown_grace >= 0.0) {
        anyhow::bail!("--shutdown-grace must be a number of seconds");
    }
    let client = args.server.connect()?;
    let command = Arc::new(args.command);
    let groups = Groups::default();
    let mut builder = Worker::builder(client)
        .concurrency(args.concurrency)
        .capabilities(args.capabilities)
        .shutdown_grace(Duration::from_secs_f64(args.shutdown_grace))
        // A cancelled execution's command gets SIGTERM and this long to exit.
        .cancel_grace(Duration::from_secs(5));
    for lane in &args.lanes {
        builder = builder.lane(lane);
    }
    if let Some(id) = args.worker_id {
        builder = builder.worker_id(id);
    }
    let (cmd, running) = (command.clone(), groups.clone());
    let (other_exits, verbose) = (args.other_exits, args.verbose);
    let worker = builder
        .fallback_handler(move |ctx: JobContext| {
            let (cmd, running) = (cmd.clone(), running.clone());
            async move {
                let (id, attempt, kind) = (ctx.id(), ctx.attempt(), ctx.kind().to_owned());
                let started = Instant::now();
                let ended = child::run(&cmd, ctx, &running, other_exits).await;
                if verbose {
                    let took = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
                    let error = ended
                        .error()
                        .and_then(|e| e.lines().next())
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default();
                    eprintln!(
                        "{id} {kind} attempt {attempt}: {} in {}{error}",
                        ended.summary(),
                        duration(took)
                    );
                }
                ended.into_result()
            }
        })
        .start()
        .map_err(|e| args.server.explain(e))?;
    eprintln!(
        "ff worker {}: running `{}` for lane {} on {} ({} at a time); Ctrl-C or SIGTERM stops it",
        worker.id(),
        command.join(" "),
        args.lanes.join(", "),
        args.server.server,
        args.concurrency.max(1),
    );

    signals.recv().await;
    eprintln!(
        "stopping: no more claims; running commands got SIGTERM (press Ctrl-C again to kill them)"
    );
    let forced = groups.clone();
    tokio::spawn(async move {
        signals.recv().await;
        forced.signal_all("KILL");
        eprintln!("killed the running commands; their leases expire and they run again");
        std::process::exit(130);
    });
    let stats = worker.shutdown().await;
    eprintln!(
        "stopped: {} completed, {} retried, {} failed, {} handed back",
        stats.completed, stats.retried, stats.failed, stats.released
    );
    Ok(())
}

/// Fails early, with a clear message, when CMD cannot be found.
fn check_runnable(program: &str) -> anyhow::Result<()> {
    let found = if program.contains('/') {
        Path::new(program).is_file()
    } else {
        std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
            .unwrap_or(false)
    };
    if found {
        Ok(())
    } else {
        anyhow::bail!("cannot find the command `{program}` (not a file, nor on PATH)")
    }
}

/// Ctrl-C and SIGTERM.
struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    #[cfg(unix)]
    fn listen() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    #[cfg(not(unix))]
    fn listen() -> anyhow::Result<Self> {
        Ok(Self {})
    }

    /// Resolves at the next signal.
    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
