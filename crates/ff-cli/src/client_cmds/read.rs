//! `ff ls`, `ff show` and `ff stats`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use clap::Args;
use ff_core::execution::AttemptEnd;
use ff_core::flow::FlowView;
use ff_core::{EngineError, Execution, ExecutionId, FlowId, Limits, ListFilter, Page, State};

use super::failure::Failure;
use super::table::{duration, time, Table};
use super::{print_json, OutputArgs, ServerArgs};

fn parse_state(s: &str) -> Result<State, String> {
    s.parse().map_err(|_| {
        let names: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

/// `ff ls` options.
#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Only executions in this state.
    #[arg(long, value_parser = parse_state)]
    state: Option<State>,
    #[arg(long)]
    lane: Option<String>,
    #[arg(long)]
    kind: Option<String>,
    /// At most this many (1..=1000).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Continue after a previous page (printed when more follow).
    #[arg(long, conflicts_with = "newest")]
    cursor: Option<String>,
    /// The latest `--limit` executions, newest first. The API lists oldest
    /// first, so this reads every matching page: narrow it with `--lane`,
    /// `--state` or `--kind` on a large namespace.
    #[arg(long)]
    newest: bool,
}

pub async fn ls(args: LsArgs) -> anyhow::Result<()> {
    let client = args.server.connect()?;
    let filter = ListFilter {
        state: args.state,
        lane: args.lane.clone(),
        kind: args.kind.clone(),
        limit: args.limit,
        cursor: args.cursor.clone(),
        ..ListFilter::default()
    };
    let page = if args.newest {
        newest(&client, filter)
            .await
            .map_err(|e| args.server.explain(e))?
    } else {
        client
            .list_executions(filter)
            .await
            .map_err(|e| args.server.explain(e))?
    };
    if args.output.json {
        return print_json(&page);
    }
    let mut table = Table::new(["ID", "STATE", "LANE", "KIND", "ATTEMPT", "CREATED (UTC)"]);
    for exec in &page.items {
        table.row([
            exec.id.to_string(),
            exec.state.to_string(),
            exec.lane.clone(),
            exec.kind.clone(),
            exec.attempt.to_string(),
            time(exec.created_at),
        ]);
    }
    if table.is_empty() {
        eprintln!("no executions match");
    } else {
        table.print();
    }
    if let Some(cursor) = page.next_cursor {
        eprintln!("more: --cursor {cursor}");
    }
    Ok(())
}

/// The last `filter.limit` executions matching `filter`, newest first: every
/// page is read, in the largest pages the API serves, and only the tail is
/// kept.
async fn newest(
    client: &ff_sdk::Client,
    filter: ListFilter,
) -> Result<Page<Execution>, EngineError> {
    let max = Limits::default().max_batch;
    let keep = filter.limit as usize;
    if !(1..=max).contains(&keep) {
        return Err(EngineError::invalid(
            "limit",
            format!("must be between 1 and {max}"),
        ));
    }
    let mut filter = ListFilter {
        limit: u32::try_from(max).unwrap_or(u32::MAX),
        ..filter
    };
    let mut tail = VecDeque::with_capacity(keep);
    loop {
        let page = client.list_executions(filter.clone()).await?;
        for exec in page.items {
            if tail.len() == keep {
                tail.pop_front();
            }
            tail.push_back(exec);
        }
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => break,
        }
    }
    Ok(Page {
        items: tail.into_iter().rev().collect(),
        next_cursor: None,
    })
}

/// `ff show` options.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// An execution id (or a flow id).
    id: String,
}

pub async fn show(args: ShowArgs) -> anyhow::Result<()> {
    let client = args.server.connect()?;
    let uuid: ExecutionId = args.id.parse().map_err(|_| {
        Failure::invalid(
            "id",
            format!("`{}` is not an execution or flow id", args.id),
        )
    })?;
    match client.get_execution(uuid).await {
        Ok(exec) if args.output.json => print_json(&exec),
        Ok(exec) => {
            print_execution(&exec);
            Ok(())
        }
        Err(EngineError::NotFound { .. }) => {
            let flow_id = FlowId::from_uuid(*uuid.as_uuid());
            match client.get_flow(flow_id).await {
                Ok(flow) if args.output.json => print_json(&flow),
                Ok(flow) => {
                    print_flow(&flow);
                    Ok(())
                }
                Err(EngineError::NotFound { .. }) => Err(Failure::not_found(format!(
                    "no execution or flow {} in namespace `{}`",
                    args.id, args.server.namespace
                ))
                .into()),
                Err(err) => Err(args.server.explain(err)),
            }
        }
        Err(err) => Err(args.server.explain(err)),
    }
}

fn print_execution(exec: &Execution) {
    let mut fields = Table::new(["id", &exec.id.to_string()]);
    let mut field = |name: &str, value: String| fields.row([name.to_owned(), value]);
    field("namespace", exec.namespace.clone());
    field("lane", exec.lane.clone());
    field("kind", exec.kind.clone());
    field("state", exec.state.to_string());
    field(
        "attempt",
        format!("{} of {}", exec.attempt, exec.attempts_allowed),
    );
    field("priority", exec.priority.to_string());
    if let Some(at) = exec.run_at {
        field("run at", time(at));
    }
    if let Some(at) = exec.deadline {
        field("deadline", time(at));
    }
    if let Some(flow) = &exec.flow {
        field("flow", format!("{} (node {})", flow.flow_id, flow.node_key));
    }
    if let Some(key) = &exec.idempotency_key {
        field("idempotency key", key.clone());
    }
    if !exec.capabilities.is_empty() {
        field("capabilities", exec.capabilities.join(", "));
    }
    for (key, value) in &exec.tags {
        field("tag", format!("{key}={value}"));
    }
    field("created", time(exec.created_at));
    if let Some(at) = exec.finished_at {
        field("finished", time(at));
    }
    if let Some(worker) = exec
        .worker_id
        .as_ref()
        .filter(|_| exec.state == State::Running)
    {
        field("worker", worker.clone());
    }
    field("payload", exec.payload.to_string());
    if let Some(result) = &exec.result {
        field("result", result.to_string());
    }
    if let Some(error) = &exec.error {
        field("error", error.clone());
    }
    fields.print();
    if let Some(wait) = &exec.wait {
        super::signal::print_wait(wait);
    }
    if exec.attempts.is_empty() {
        return;
    }
    println!("\nattempts");
    let mut attempts = Table::new(["#", "WORKER", "STARTED (UTC)", "TOOK", "ENDED", "ERROR"]);
    for a in &exec.attempts {
        let ended = match a.end {
            None => "running".to_owned(),
            Some(AttemptEnd::Failed { retry_at: Some(_) }) => "failed (retry scheduled)".to_owned(),
            Some(AttemptEnd::Failed { retry_at: None }) => "failed".to_owned(),
            Some(end) => serde_json::to_value(end)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{end:?}")),
        };
        attempts.row([
            a.attempt.to_string(),
            a.worker_id.clone(),
            time(a.started_at),
            a.ended_at
                .map(|end| duration(end - a.started_at))
                .unwrap_or_default(),
            ended,
            a.error.clone().unwrap_or_default().replace('\n', " ⏎ "),
        ]);
    }
    attempts.print();
}

fn print_flow(flow: &FlowView) {
    let mut fields = Table::new(["flow", &flow.id.to_string()]);
    fields.row(["namespace", &flow.namespace]);
    fields.row(["state", flow.state.as_str()]);
    fields.row(["created", &time(flow.created_at)]);
    if flow.fail_fast {
        fields.row(["fail fast", "yes"]);
    }
    fields.print();
    println!("\nnodes");
    let mut parents: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for edge in &flow.edges {
        let condition = serde_json::to_value(edge.condition)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let label = if condition == "on_success" {
            edge.from.clone()
        } else {
            format!("{} ({condition})", edge.from)
        };
        parents.entry(edge.to.as_str()).or_default().push(label);
    }
    let mut nodes = Table::new(["KEY", "STATE", "EXECUTION", "AFTER"]);
    for node in &flow.nodes {
        nodes.row([
            node.key.clone(),
            node.state.to_string(),
            node.execution_id.to_string(),
            parents
                .get(node.key.as_str())
                .map(|p| p.join(", "))
                .unwrap_or_default(),
        ]);
    }
    nodes.print();
}

/// `ff stats` options.
#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub async fn stats(args: StatsArgs) -> anyhow::Result<()> {
    let client = args.server.connect()?;
    let counts = client.counts().await.map_err(|e| args.server.explain(e))?;
    if args.output.json {
        return print_json(&counts);
    }
    if counts.is_empty() {
        eprintln!("no executions in namespace `{}`", args.server.namespace);
        return Ok(());
    }
    let states: BTreeSet<State> = counts.iter().map(|c| c.state).collect();
    let mut lanes: BTreeMap<&str, BTreeMap<State, u64>> = BTreeMap::new();
    for c in &counts {
        lanes.entry(&c.lane).or_default().insert(c.state, c.count);
    }
    let mut header = vec!["LANE".to_owned()];
    header.extend(states.iter().map(|s| s.as_str().to_uppercase()));
    header.push("TOTAL".to_owned());
    let mut table = Table::new(header);
    for (lane, by_state) in &lanes {
        let mut row = vec![(*lane).to_owned()];
        row.extend(
            states
                .iter()
                .map(|s| by_state.get(s).copied().unwrap_or(0).to_string()),
        );
        row.push(by_state.values().sum::<u64>().to_string());
        table.row(row);
    }
    table.print();
    Ok(())
}
