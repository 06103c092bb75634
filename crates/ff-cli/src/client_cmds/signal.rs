//! `ff signal`: deliver a signal with a waitpoint token, or to an
//! execution's waitpoint by id and key; and how `ff show` prints an
//! execution's waitpoints and signals.

use clap::Args;
use ff_core::suspension::{SignalRequest, WaitState};
use ff_core::{ExecutionId, JsonText};

use super::failure::Failure;
use super::table::{time, Table};
use super::{print_json, OutputArgs, ServerArgs};

/// Options of `ff signal`.
#[derive(Debug, Args)]
pub struct SignalArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// The waitpoint token (what an outside party holds); or leave it out
    /// and name `--execution` and `--waitpoint`.
    #[arg(
        id = "waitpoint_token",
        value_name = "TOKEN",
        required_unless_present = "execution",
        conflicts_with_all = ["execution", "waitpoint"]
    )]
    waitpoint_token: Option<String>,
    /// The execution, with `--waitpoint` (an operator's signal, sent with
    /// the API token).
    #[arg(long, requires = "waitpoint")]
    execution: Option<String>,
    /// The waitpoint key, with `--execution`.
    #[arg(long, requires = "execution")]
    waitpoint: Option<String>,
    /// The signal's name.
    #[arg(long, default_value = "signal")]
    name: String,
    /// The payload, as JSON.
    #[arg(long, default_value = "null")]
    payload: String,
    /// Who sends it.
    #[arg(long, default_value = "ff-cli")]
    source: String,
    /// A repeat with the same key answers with the first signal.
    #[arg(long)]
    idempotency_key: Option<String>,
}

pub async fn signal(args: SignalArgs) -> anyhow::Result<()> {
    let client = args.server.connect()?;
    let payload =
        JsonText::parse(args.payload.clone()).map_err(|err| Failure::invalid("--payload", err))?;
    let mut req = SignalRequest::new(&args.name, payload).source(&args.source);
    req.idempotency_key.clone_from(&args.idempotency_key);
    let answer = match (&args.waitpoint_token, &args.execution, &args.waitpoint) {
        (Some(token), _, _) => client.signal(token, &req).await,
        (None, Some(id), Some(key)) => {
            let id: ExecutionId = id
                .parse()
                .map_err(|_| Failure::invalid("--execution", format!("`{id}` is not an id")))?;
            client.signal_waitpoint(id, key, &req).await
        }
        _ => {
            return Err(
                Failure::invalid("token", "name a token, or --execution and --waitpoint").into(),
            )
        }
    }
    .map_err(|err| args.server.explain(err))?;
    if args.output.json {
        return print_json(&answer);
    }
    let what = if answer.duplicate {
        "already delivered as"
    } else {
        "delivered"
    };
    let resumed = if answer.resumed {
        "; the execution resumed"
    } else {
        ""
    };
    println!("{what} signal {}{resumed}", answer.signal_id);
    Ok(())
}

/// The waitpoints and signals sections of `ff show`.
pub fn print_wait(wait: &WaitState) {
    if !wait.waitpoints.is_empty() {
        println!("\nwaitpoints");
        let mut table = Table::new(["KEY", "ATTEMPT", "STATE", "CREATED (UTC)", "EXPIRES (UTC)"]);
        for w in &wait.waitpoints {
            table.row([
                w.key.clone(),
                w.attempt.to_string(),
                format!("{:?}", w.state).to_lowercase(),
                time(w.created_at),
                time(w.expires_at),
            ]);
        }
        table.print();
    }
    if !wait.signals.is_empty() {
        println!("\nsignals");
        let mut table = Table::new([
            "ID",
            "WAITPOINT",
            "NAME",
            "SOURCE",
            "RECEIVED (UTC)",
            "PAYLOAD",
        ]);
        for s in &wait.signals {
            table.row([
                s.id.to_string(),
                s.waitpoint.clone().unwrap_or_else(|| "-".to_owned()),
                s.name.clone(),
                s.source.clone().unwrap_or_default(),
                time(s.received_at),
                s.payload.to_string(),
            ]);
        }
        table.print();
    }
}
