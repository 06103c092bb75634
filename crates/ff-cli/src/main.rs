//! `ff`, FlowFabric's command-line tool.
//!
//! # Layout
//! - `db_url`, `backend`: which backend a `--database-url` names, and opening it.
//! - `signals`: Ctrl-C / SIGTERM as a shutdown trigger.
//! - `demo`: `ff demo`, the embedded engine with in-process workers.
//! - `serve`: `ff serve`, the HTTP API and the engine.
//! - `bench`: `ff bench`, the benchmark harness and its report.
//! - `client_cmds`: `submit`, `flow submit`, `ls`, `show`, `cancel`, `retry`,
//!   `stats` and `worker -- CMD`, HTTP clients of `ff serve` through `ff-sdk`.

mod backend;
mod bench;
mod client_cmds;
mod db_url;
mod demo;
mod serve;
mod signals;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// FlowFabric: a durable execution engine.
#[derive(Debug, Parser)]
#[command(name = "ff", version, about)]
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
    Bench(bench::BenchArgs),
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
        Command::Bench(args) => bench::run(args).await,
        Command::Client(command) => client_cmds::run(command).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
