//! `ff submit` and `ff flow submit FILE`.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use ff_core::flow::FlowSpec;
use ff_core::{JsonText, SubmitRequest};

use super::table::Table;
use super::{print_json, OutputArgs, ServerArgs};

/// `ff submit` options.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// The lane (queue) to submit to.
    #[arg(long)]
    lane: String,
    /// The handler name.
    #[arg(long)]
    kind: String,
    /// The payload, as JSON (`-` reads it from stdin).
    #[arg(long, default_value = "null")]
    payload: String,
    /// -100..=100, higher first.
    #[arg(long, allow_negative_numbers = true)]
    priority: Option<i32>,
    /// A repeat with the same key returns the first id instead.
    #[arg(long)]
    idempotency_key: Option<String>,
}

pub async fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let payload = if args.payload == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the payload from stdin")?;
        text
    } else {
        args.payload
    };
    let payload = JsonText::parse(payload.trim()).map_err(|e| anyhow::anyhow!("--payload: {e}"))?;
    let mut req = SubmitRequest::new(args.lane, args.kind, payload);
    if let Some(priority) = args.priority {
        req = req.priority(priority);
    }
    if let Some(key) = args.idempotency_key {
        req = req.idempotency_key(key);
    }
    let client = args.server.connect()?;
    let submitted = client
        .submit(req)
        .await
        .map_err(|e| args.server.explain(e))?;
    if args.output.json {
        return print_json(&submitted);
    }
    // The id alone on stdout, so `ID=$(ff submit ...)` works.
    println!("{}", submitted.id);
    if !submitted.created {
        eprintln!("(the idempotency key matched an existing execution; nothing new was submitted)");
    }
    Ok(())
}

/// `ff flow` subcommands.
#[derive(Debug, Args)]
pub struct FlowArgs {
    #[command(subcommand)]
    command: FlowCommand,
}

#[derive(Debug, Subcommand)]
enum FlowCommand {
    /// Create a flow from a JSON file (`-` for stdin): `{"nodes": [...],
    /// "edges": [...]}`, as `POST /v1/namespaces/{ns}/flows` takes it.
    Submit(FlowSubmitArgs),
}

#[derive(Debug, Args)]
struct FlowSubmitArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// The flow spec (JSON).
    file: PathBuf,
}

pub async fn flow(args: FlowArgs) -> anyhow::Result<()> {
    let FlowCommand::Submit(args) = args.command;
    let text = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the flow from stdin")?;
        text
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?
    };
    let spec: FlowSpec = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a flow spec (JSON with `nodes` and `edges`)",
            args.file.display()
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
    let note = if created.created {
        ""
    } else {
        " (the idempotency key matched an existing flow)"
    };
    println!("flow {}{note}", created.flow_id);
    let mut table = Table::new(["NODE", "EXECUTION"]);
    for (key, id) in &created.nodes {
        table.row([key.clone(), id.to_string()]);
    }
    table.print();
    Ok(())
}
