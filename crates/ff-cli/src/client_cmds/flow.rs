//! `ff flow submit FILE` and `ff flow ls`.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use ff_core::flow::{FlowFilter, FlowSpec, FlowState};

use super::failure::Failure;
use super::table::{time, Table};
use super::{print_json, OutputArgs, ServerArgs};

/// `ff flow` subcommands.
#[derive(Debug, Args)]
pub struct FlowArgs {
    #[command(subcommand)]
    command: FlowCommand,
}

impl FlowArgs {
    pub fn json(&self) -> bool {
        match &self.command {
            FlowCommand::Submit(args) => args.output.json,
            FlowCommand::Ls(args) => args.output.json,
        }
    }
}

#[derive(Debug, Subcommand)]
enum FlowCommand {
    /// Create a flow from a JSON file (`-` for stdin): `{"nodes": [...],
    /// "edges": [...]}`, as `POST /v1/namespaces/{ns}/flows` takes it.
    /// Prints the flow id (and a table of its nodes with `--verbose` or on
    /// a terminal).
    Submit(FlowSubmitArgs),
    /// List flows in creation order (`--cursor` pages on).
    Ls(FlowLsArgs),
}

#[derive(Debug, Args)]
struct FlowSubmitArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// Print the flow id and a table of node keys and execution ids.
    #[arg(long, short)]
    verbose: bool,
    /// The flow spec (JSON).
    file: PathBuf,
}

#[derive(Debug, Args)]
struct FlowLsArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// Only flows in this state (running, completed, failed, cancelled).
    #[arg(long, value_parser = parse_flow_state)]
    state: Option<FlowState>,
    /// At most this many (1..=1000).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Continue after a previous page (printed when more follow).
    #[arg(long)]
    cursor: Option<String>,
}

fn parse_flow_state(s: &str) -> Result<FlowState, String> {
    s.parse()
        .map_err(|_| "expected one of running, completed, failed, cancelled".to_owned())
}

pub async fn run(args: FlowArgs) -> anyhow::Result<()> {
    match args.command {
        FlowCommand::Submit(args) => submit(args).await,
        FlowCommand::Ls(args) => ls(args).await,
    }
}

async fn submit(args: FlowSubmitArgs) -> anyhow::Result<()> {
    let text = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the flow from stdin")?;
        text
    } else {
        std::fs::read_to_string(&args.file).map_err(|e| {
            Failure::invalid("file", format!("cannot read {}: {e}", args.file.display()))
        })?
    };
    let spec: FlowSpec = serde_json::from_str(&text).map_err(|e| {
        Failure::invalid(
            "file",
            format!(
                "{} is not a flow spec (JSON with `nodes` and `edges`): {e}",
                args.file.display()
            ),
        )
    })?;
    let client = args.server.connect()?;
    let created = client
        .create_flow(spec)
        .await
        .map_err(|e| args.server.explain(e))?;
    if args.output.json {
        return print_json(&created);
    }
    if !created.created {
        eprintln!("(the idempotency key matched an existing flow; nothing new was created)");
    }
    // The id alone when piped, so `FLOW=$(ff flow submit f.json)` works
    // like `ff submit`; people at a terminal see the nodes too.
    if !(args.verbose || std::io::stdout().is_terminal()) {
        println!("{}", created.flow_id);
        return Ok(());
    }
    println!("flow {}", created.flow_id);
    let mut table = Table::new(["NODE", "EXECUTION"]);
    for (key, id) in &created.nodes {
        table.row([key.clone(), id.to_string()]);
    }
    table.print();
    Ok(())
}

async fn ls(args: FlowLsArgs) -> anyhow::Result<()> {
    let client = args.server.connect()?;
    let filter = FlowFilter {
        state: args.state,
        limit: args.limit,
        cursor: args.cursor,
        ..FlowFilter::default()
    };
    let page = client
        .list_flows(filter)
        .await
        .map_err(|e| args.server.explain(e))?;
    if args.output.json {
        return print_json(&page);
    }
    let mut table = Table::new(["ID", "STATE", "NODES", "FAIL FAST", "CREATED (UTC)"]);
    for flow in &page.items {
        table.row([
            flow.id.to_string(),
            flow.state.as_str().to_owned(),
            flow.nodes.to_string(),
            if flow.fail_fast { "yes" } else { "no" }.to_owned(),
            time(flow.created_at),
        ]);
    }
    if table.is_empty() {
        eprintln!("no flows match");
    } else {
        table.print();
    }
    if let Some(cursor) = page.next_cursor {
        eprintln!("more: --cursor {cursor}");
    }
    Ok(())
}
