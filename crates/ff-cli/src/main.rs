//! `ff`, FlowFabric's command-line tool.
//!
//! # Layout
//! - `db_url`, `backend`: which backend a `--database-url` names, and opening it.
//! - `signals`: Ctrl-C / SIGTERM as a shutdown trigger.
//! - `demo`: `ff demo`, the embedded engine with in-process workers.
//! - `serve`: `ff serve`, the HTTP API and the engine.
//! - `bench_opener`: `ff bench`, the `ff-bench` harness given this tool's
//!   way of opening backends.
//! - `client_cmds`: `submit`, `flow submit`, `ls`, `show`, `cancel`, `retry`,
//!   `stats` and `worker -- CMD`, HTTP clients of `ff serve` through `ff-sdk`.

mod backend;
mod bench_opener;
mod client_cmds;
mod db_url;
mod demo;
mod serve;
mod signals;
mod waitpoint_keys;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Exit codes, the same for every command (and JSON errors with `--json`).
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  any other error
  2  bad command line
  3  not found (code `not_found`)
  4  invalid input (code `invalid`)
  5  conflict with the current state (`conflict`, `lease_lost`, `not_active`)
  6  server or backend unavailable; retrying later may succeed (`unavailable`)
  7  unauthorised: missing or wrong token (`unauthorized`)
With --json, an error is printed on stderr as {\"code\", \"message\", \"field\"?}.";

/// FlowFabric: a durable execution engine.
#[derive(Debug, Parser)]
#[command(name = "ff", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a batch of executions through the embedded engine with
    /// in-process workers, then print a summary.
    Demo(demo::DemoArgs),
    /// Serve the HTTP API and run the engine on a backend.
    Serve(serve::ServeArgs),
    /// Measure throughput, latency and promotion lag, optionally against
    /// the raw SQLite ceiling.
    Bench(ff_bench::BenchArgs),
    /// The keys that sign waitpoint tokens: `ff waitpoint-keys rotate`.
    #[command(subcommand)]
    WaitpointKeys(waitpoint_keys::WaitpointKeysCommand),
    #[command(flatten)]
    Client(client_cmds::ClientCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    // Logs go to stderr so stdout carries only results; RUST_LOG overrides.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Bench(args) => ff_bench::run(args, &bench_opener::BenchOpener).await,
        Command::WaitpointKeys(command) => waitpoint_keys::run(command).await,
        Command::Client(command) => Ok(client_cmds::run(command).await),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
