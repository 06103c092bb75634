//! The client commands: `ff submit`, `flow submit`, `flow ls`, `ls`, `show`,
//! `cancel`, `retry`, `signal`, `why`, `limits`, `budget`, `stats` and
//! `worker`, each a call to a running
//! `ff serve` through `ff-sdk` over HTTP.
//!
//! Output is a plain aligned table (or `key  value` lines) for people and
//! the API's JSON with `--json` for scripts; errors are one clear line on
//! stderr (JSON with `--json`) and an exit code per kind of failure (see
//! `failure`).
//!
//! # Layout
//! - `submit`: `ff submit`, one execution or a batch from a file.
//! - `flow`: `ff flow submit FILE`, `ff flow ls`.
//! - `when`: times and durations on the command line.
//! - `read`: `ff ls`, `ff show`, `ff stats`.
//! - `steer`: `ff cancel`, `ff retry`.
//! - `signal`: `ff signal`, and the waitpoints and signals `ff show` prints.
//! - `why`: `ff why`, what holds an execution that is not running.
//! - `limits`: `ff limits ls|set|rm`, `ff budget ls|show`.
//! - `worker`, `child`: `ff worker -- CMD`, and running CMD for one attempt.
//! - `failure`: classified errors, their exit codes and JSON.
//! - `table`: aligned columns and times.

mod child;
mod failure;
mod flow;
mod limits;
mod read;
mod signal;
mod steer;
mod submit;
mod table;
mod when;
mod why;
mod worker;

use std::process::ExitCode;

use clap::{Args, Subcommand};
use ff_core::EngineError;
use ff_sdk::Client;

use failure::Failure;
pub(crate) use when::parse_duration_ms;

/// The client commands, flattened into `ff`'s own.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Submit one execution, or a batch with `--file`; prints the id(s).
    Submit(Box<submit::SubmitArgs>),
    /// Flows: `ff flow submit FILE`, `ff flow ls`.
    Flow(flow::FlowArgs),
    /// List executions in creation order (`--cursor` pages on; `--newest`
    /// shows the latest first).
    Ls(read::LsArgs),
    /// Show an execution (attempts, errors, result) or a flow.
    Show(read::ShowArgs),
    /// Cancel an execution, or a whole flow.
    Cancel(steer::IdArgs),
    /// Give a failed execution one more attempt.
    Retry(steer::IdArgs),
    /// Signal a waitpoint: with its token, or by `--execution` and
    /// `--waitpoint`.
    Signal(signal::SignalArgs),
    /// Say what holds an execution that is not running.
    Why(why::WhyArgs),
    /// Flow-control policies: `ff limits ls`, `ff limits set NAME
    /// --concurrency KEY --limit 5`, `ff limits rm NAME`.
    Limits(limits::LimitsArgs),
    /// Budgets as they stand: `ff budget ls`, `ff budget show NAME`.
    Budget(limits::BudgetArgs),
    /// Executions per lane and state.
    Stats(read::StatsArgs),
    /// Run a command for each execution claimed from a lane: the payload on
    /// its stdin, its stdout as the result; exit 75 retries, other non-zero
    /// exits fail for good (`--other-exits retry` to retry them too).
    Worker(worker::WorkerArgs),
}

impl ClientCommand {
    /// Whether the command was asked for JSON, which its errors then are too.
    fn json(&self) -> bool {
        match self {
            Self::Submit(args) => args.output.json,
            Self::Flow(args) => args.json(),
            Self::Ls(args) => args.output.json,
            Self::Show(args) => args.output.json,
            Self::Cancel(args) | Self::Retry(args) => args.output.json,
            Self::Signal(args) => args.output.json,
            Self::Why(args) => args.output.json,
            Self::Limits(args) => args.json(),
            Self::Budget(args) => args.json(),
            Self::Stats(args) => args.output.json,
            Self::Worker(_) => false,
        }
    }
}

/// Runs the command; a failure is printed here, so the exit code can say
/// what kind it was.
pub async fn run(command: ClientCommand) -> ExitCode {
    let json = command.json();
    let result = match command {
        ClientCommand::Submit(args) => submit::submit(*args).await,
        ClientCommand::Flow(args) => flow::run(args).await,
        ClientCommand::Ls(args) => read::ls(args).await,
        ClientCommand::Show(args) => read::show(args).await,
        ClientCommand::Cancel(args) => steer::cancel(args).await,
        ClientCommand::Retry(args) => steer::retry(args).await,
        ClientCommand::Signal(args) => signal::signal(args).await,
        ClientCommand::Why(args) => why::why(args).await,
        ClientCommand::Limits(args) => limits::limits(args).await,
        ClientCommand::Budget(args) => limits::budget(args).await,
        ClientCommand::Stats(args) => read::stats(args).await,
        ClientCommand::Worker(args) => worker::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => Failure::of(&err).report(json),
    }
}

/// Where the server is and who we are to it.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The `ff serve` base URL.
    #[arg(long, env = "FF_SERVER", default_value = "http://127.0.0.1:7878")]
    pub server: String,
    /// Bearer token, when the server requires one.
    #[arg(long, env = "FF_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The namespace to work in.
    #[arg(long, env = "FF_NAMESPACE", default_value = "default")]
    pub namespace: String,
}

impl ServerArgs {
    pub fn connect(&self) -> anyhow::Result<Client> {
        let client = Client::http(&self.server, self.token.clone())
            .map_err(|err| Failure::invalid("--server", err))?;
        Ok(client.with_namespace(&self.namespace))
    }

    /// An SDK error as one line a person can act on, classified.
    pub fn explain(&self, err: EngineError) -> anyhow::Error {
        self.failure(err).into()
    }

    /// [`Self::explain`], before it is wrapped.
    pub fn failure(&self, err: EngineError) -> Failure {
        Failure::from_engine(err, &self.server, &self.namespace)
    }
}

/// `--json`, for the commands that print.
#[derive(Debug, Clone, Copy, Args)]
pub struct OutputArgs {
    /// Print JSON (the API's shapes) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Prints `value` as one line of JSON.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
