//! The client commands: `ff submit`, `flow submit`, `ls`, `show`, `cancel`,
//! `retry`, `stats` and `worker`, each a call to a running `ff serve`
//! through `ff-sdk` over HTTP.
//!
//! Output is a plain aligned table (or `key  value` lines) for people and
//! the API's JSON with `--json` for scripts; errors are one clear line on
//! stderr and a non-zero exit.
//!
//! # Layout
//! - `submit`: `ff submit`, `ff flow submit FILE`.
//! - `read`: `ff ls`, `ff show`, `ff stats`.
//! - `steer`: `ff cancel`, `ff retry`.
//! - `worker`, `child`: `ff worker -- CMD`, and running CMD for one attempt.
//! - `table`: aligned columns and times.

mod child;
mod read;
mod steer;
mod submit;
mod table;
mod worker;

use std::process::ExitCode;

use clap::{Args, Subcommand};
use ff_core::EngineError;
use ff_sdk::{Client, HttpError};

/// The client commands, flattened into `ff`'s own.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Submit one execution; prints its id.
    Submit(submit::SubmitArgs),
    /// Flows: `ff flow submit FILE`.
    Flow(submit::FlowArgs),
    /// List executions in creation order (`--cursor` pages on).
    Ls(read::LsArgs),
    /// Show an execution (attempts, errors, result) or a flow.
    Show(read::ShowArgs),
    /// Cancel an execution, or a whole flow.
    Cancel(steer::IdArgs),
    /// Give a failed execution one more attempt.
    Retry(steer::IdArgs),
    /// Executions per lane and state.
    Stats(read::StatsArgs),
    /// Run a command for each execution claimed from a lane: the payload on
    /// its stdin, its stdout as the result.
    Worker(worker::WorkerArgs),
}

pub async fn run(command: ClientCommand) -> anyhow::Result<ExitCode> {
    match command {
        ClientCommand::Submit(args) => submit::submit(args).await,
        ClientCommand::Flow(args) => submit::flow(args).await,
        ClientCommand::Ls(args) => read::ls(args).await,
        ClientCommand::Show(args) => read::show(args).await,
        ClientCommand::Cancel(args) => steer::cancel(args).await,
        ClientCommand::Retry(args) => steer::retry(args).await,
        ClientCommand::Stats(args) => read::stats(args).await,
        ClientCommand::Worker(args) => worker::run(args).await,
    }?;
    Ok(ExitCode::SUCCESS)
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
            .map_err(|err| anyhow::anyhow!("--server: {err}"))?;
        Ok(client.with_namespace(&self.namespace))
    }

    /// An SDK error as one line a person can act on.
    pub fn explain(&self, err: EngineError) -> anyhow::Error {
        match &err {
            EngineError::Unavailable { message } if message.starts_with("cannot reach") => {
                // The innermost cause says it best ("Connection refused").
                let cause = message.rsplit(": ").next().unwrap_or(message);
                anyhow::anyhow!(
                    "cannot reach the FlowFabric server at {} ({cause}); is `ff serve` running? Set --server or FF_SERVER",
                    self.server
                )
            }
            EngineError::NotFound { entity, id } => {
                anyhow::anyhow!("{entity} {id} not found in namespace `{}`", self.namespace)
            }
            EngineError::Backend(source) => match source.downcast_ref::<HttpError>() {
                Some(http) if http.status == 401 => anyhow::anyhow!(
                    "the server wants a valid token: pass --token or set FF_API_TOKEN"
                ),
                Some(http) => anyhow::anyhow!("{http}"),
                None => anyhow::Error::new(err),
            },
            _ => anyhow::Error::new(err),
        }
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
