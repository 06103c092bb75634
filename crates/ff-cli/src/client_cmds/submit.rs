//! `ff submit`: one execution from flags, or a batch from a file through
//! the batch endpoint.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use ff_core::{JsonText, Limits, RetryPolicy, SubmitRequest, Submitted};

use super::failure::Failure;
use super::when::{now_ms, parse_duration_ms, parse_when, When};
use super::{print_json, OutputArgs, ServerArgs};

/// The flags that describe one execution, which `--file` replaces.
const SINGLE: [&str; 16] = [
    "lane",
    "kind",
    "payload",
    "priority",
    "idempotency_key",
    "run_at",
    "delay",
    "max_attempts",
    "backoff",
    "lease_ms",
    "deadline",
    "tags",
    "capabilities",
    "concurrency_key",
    "rate_key",
    "fairness_key",
];

/// `ff submit` options.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// The lane (queue) to submit to.
    #[arg(long, required_unless_present = "file")]
    lane: Option<String>,
    /// The handler name.
    #[arg(long, required_unless_present = "file")]
    kind: Option<String>,
    /// The payload, as JSON (`-` reads it from stdin).
    #[arg(long)]
    payload: Option<String>,
    /// -100..=100, higher first.
    #[arg(long, allow_negative_numbers = true)]
    priority: Option<i32>,
    /// A repeat with the same key returns the first id instead.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Not claimable before this time: RFC 3339 (`2026-12-03T12:00:00Z`, no
    /// offset = UTC), epoch ms, or a duration from now (`90s`).
    #[arg(long, value_parser = parse_when, conflicts_with = "delay")]
    run_at: Option<When>,
    /// Not claimable for this long (`250ms`, `90s`, `5m`, `1h30m`).
    #[arg(long, value_parser = parse_duration_ms)]
    delay: Option<u64>,
    /// Attempts in all, the first included (1 = never retry).
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Backoff before the first retry, doubling up to MAX (default 5m):
    /// `2s` or `2s,10m`.
    #[arg(long, value_name = "INITIAL[,MAX]", value_parser = parse_backoff)]
    backoff: Option<(u64, Option<u64>)>,
    /// The lease length in milliseconds; a worker renews it at a third.
    #[arg(long)]
    lease_ms: Option<u64>,
    /// Fails with `deadline` if not finished by then: a time or a duration
    /// from now, as `--run-at` takes.
    #[arg(long, value_parser = parse_when)]
    deadline: Option<When>,
    /// A tag `KEY=VALUE` (repeat for several).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    tags: Vec<(String, String)>,
    /// A capability a worker must offer to claim it (repeat for several).
    #[arg(long = "capability")]
    capabilities: Vec<String>,
    /// Counts against the concurrency policy matching this key while it
    /// runs (see `ff limits`).
    #[arg(long)]
    concurrency_key: Option<String>,
    /// Takes a token from the rate policy matching this key when claimed.
    #[arg(long)]
    rate_key: Option<String>,
    /// Shares a fair-share lane by this key's weight, and spends from its
    /// budgets (default: the namespace, in no budget).
    #[arg(long)]
    fairness_key: Option<String>,
    /// Submit a batch instead: a JSON array of submit requests (as `POST
    /// .../executions` takes them) or one per line (JSON lines); `-` reads
    /// stdin. Prints one id per line, in the file's order. Each 1,000 go in
    /// one atomic batch.
    #[arg(long, value_name = "PATH", conflicts_with_all = SINGLE)]
    file: Option<PathBuf>,
}

fn parse_backoff(text: &str) -> Result<(u64, Option<u64>), String> {
    match text.split_once(',') {
        Some((initial, max)) => Ok((parse_duration_ms(initial)?, Some(parse_duration_ms(max)?))),
        None => Ok((parse_duration_ms(text)?, None)),
    }
}

fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

pub async fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    if let Some(file) = &args.file {
        let reqs = read_batch(file)?;
        return submit_batch(&args, reqs).await;
    }
    let req = request(&args)?;
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
    if submitted.conflicting_spec {
        eprintln!(
            "warning: the idempotency key matched an existing execution submitted with another spec; \
             nothing new was submitted"
        );
    } else if !submitted.created {
        eprintln!("(the idempotency key matched an existing execution; nothing new was submitted)");
    }
    Ok(())
}

/// The one request the flags describe.
fn request(args: &SubmitArgs) -> anyhow::Result<SubmitRequest> {
    let (Some(lane), Some(kind)) = (&args.lane, &args.kind) else {
        return Err(Failure::invalid("--lane", "--lane and --kind are required").into());
    };
    let payload = match args.payload.as_deref() {
        None => "null".to_owned(),
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the payload from stdin")?;
            text
        }
        Some(text) => text.to_owned(),
    };
    let payload = JsonText::parse(payload.trim()).map_err(|e| Failure::invalid("--payload", e))?;
    let mut req = SubmitRequest::new(lane, kind, payload);
    req.priority = args.priority;
    req.idempotency_key.clone_from(&args.idempotency_key);
    req.lease_ms = args.lease_ms;
    req.capabilities.clone_from(&args.capabilities);
    req.tags = args.tags.iter().cloned().collect::<BTreeMap<_, _>>();
    req.concurrency_key.clone_from(&args.concurrency_key);
    req.rate_key.clone_from(&args.rate_key);
    req.fairness_key.clone_from(&args.fairness_key);
    let now = now_ms();
    req.run_at = match (args.run_at, args.delay) {
        (Some(at), _) => Some(at.resolve(now)),
        (None, Some(delay)) => Some(When::In(delay).resolve(now)),
        (None, None) => None,
    };
    req.deadline = args.deadline.map(|d| d.resolve(now));
    if args.max_attempts.is_some() || args.backoff.is_some() {
        let mut retry = RetryPolicy::default();
        if let Some(max) = args.max_attempts {
            retry.max_attempts = max;
        }
        if let Some((initial, max)) = args.backoff {
            retry.initial_backoff_ms = initial;
            // An initial backoff past the default cap raises the cap with it.
            retry.max_backoff_ms = max.unwrap_or(retry.max_backoff_ms.max(initial));
        }
        req.retry = Some(retry);
    }
    Ok(req)
}

/// The submit requests in `path`: a JSON array, or JSON lines.
fn read_batch(path: &Path) -> anyhow::Result<Vec<SubmitRequest>> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the batch from stdin")?;
        text
    } else {
        std::fs::read_to_string(path).map_err(|e| {
            Failure::invalid("--file", format!("cannot read {}: {e}", path.display()))
        })?
    };
    let reqs: Vec<SubmitRequest> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).map_err(|e| {
            Failure::invalid(
                "--file",
                format!(
                    "{} is not a JSON array of submit requests: {e}",
                    path.display()
                ),
            )
        })?
    } else {
        let mut reqs = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let req = serde_json::from_str(line).map_err(|e| {
                Failure::invalid(
                    "--file",
                    format!(
                        "{} line {}: not a submit request: {e}",
                        path.display(),
                        n + 1
                    ),
                )
            })?;
            reqs.push(req);
        }
        reqs
    };
    if reqs.is_empty() {
        return Err(Failure::invalid(
            "--file",
            format!("{} holds no submit requests", path.display()),
        )
        .into());
    }
    Ok(reqs)
}

/// Submits `reqs` in batches of the API's maximum, printing each batch's
/// ids as it is accepted, so a failure part-way says what was submitted.
async fn submit_batch(args: &SubmitArgs, reqs: Vec<SubmitRequest>) -> anyhow::Result<()> {
    let client = args.server.connect()?;
    let (mut existing, mut conflicting) = (0, 0);
    let mut reqs = reqs.into_iter().peekable();
    while reqs.peek().is_some() {
        let chunk: Vec<SubmitRequest> = reqs.by_ref().take(Limits::default().max_batch).collect();
        let submitted: Vec<Submitted> = client
            .submit_batch(chunk)
            .await
            .map_err(|e| args.server.explain(e))?;
        for one in &submitted {
            if args.output.json {
                print_json(one)?;
            } else {
                println!("{}", one.id);
            }
            existing += usize::from(!one.created);
            conflicting += usize::from(one.conflicting_spec);
        }
    }
    if existing > 0 && !args.output.json {
        eprintln!("({existing} idempotency keys matched existing executions; those were not submitted again)");
    }
    if conflicting > 0 && !args.output.json {
        eprintln!("warning: {conflicting} of them with another spec than the stored execution's");
    }
    Ok(())
}
