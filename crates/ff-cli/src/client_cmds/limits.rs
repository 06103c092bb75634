//! `ff limits ls|set|rm` (a namespace's flow-control policies) and `ff
//! budget ls|show` (budgets as they stand).

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use ff_core::flow_control::{
    BudgetPolicy, BudgetStatus, ConcurrencyPolicy, DimensionLimit, FairSharePolicy, KeyPattern,
    Policy, PolicySpec, RateLimitPolicy, Standing,
};
use ff_core::Limits;

use super::failure::Failure;
use super::table::{time, Table};
use super::{parse_duration_ms, print_json, OutputArgs, ServerArgs};

/// `ff limits`.
#[derive(Debug, Args)]
pub struct LimitsArgs {
    #[command(subcommand)]
    command: LimitsCommand,
}

#[derive(Debug, Subcommand)]
enum LimitsCommand {
    /// List the namespace's policies.
    Ls(ListArgs),
    /// Create a policy or replace it: one of `--concurrency`, `--rate`,
    /// `--budget`, `--fair-share` or `--spec`.
    Set(Box<SetArgs>),
    /// Remove a policy (and a budget's usage).
    Rm(NameArgs),
}

#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
struct NameArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// The policy's name.
    name: String,
}

#[derive(Debug, Args)]
#[group(id = "kind", required = true, multiple = false)]
struct SetArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// The policy's name.
    name: String,
    /// At most `--limit` running per concurrency key matching this
    /// pattern (`key`, or `prefix*` for each key with the prefix).
    #[arg(long, group = "kind", requires = "limit", value_name = "PATTERN")]
    concurrency: Option<String>,
    /// With `--concurrency`.
    #[arg(long)]
    limit: Option<u32>,
    /// `--n` claims per `--per` window for each rate key matching this
    /// pattern (a token bucket holding up to `--burst`).
    #[arg(long, group = "kind", requires_all = ["n", "per"], value_name = "PATTERN")]
    rate: Option<String>,
    /// With `--rate`: tokens per window.
    #[arg(long)]
    n: Option<u64>,
    /// With `--rate`: the window (`1s`, `1m`, `1h`).
    #[arg(long, value_parser = parse_duration_ms)]
    per: Option<u64>,
    /// With `--rate`: the most claims at once (default `--n`).
    #[arg(long)]
    burst: Option<u64>,
    /// A budget for executions with this fairness key, limited by
    /// `--hard` and `--soft`.
    #[arg(long, group = "kind", value_name = "SCOPE")]
    budget: Option<String>,
    /// With `--budget`: a hard limit `DIMENSION=N` (repeat for several).
    #[arg(long, value_name = "DIMENSION=N", value_parser = parse_amount)]
    hard: Vec<(String, u64)>,
    /// With `--budget`: a soft limit `DIMENSION=N`, recorded when passed.
    #[arg(long, value_name = "DIMENSION=N", value_parser = parse_amount)]
    soft: Vec<(String, u64)>,
    /// With `--budget`: usage starts over this often (`1d`).
    #[arg(long, value_parser = parse_duration_ms)]
    reset: Option<u64>,
    /// With `--budget`: a hard breach cancels the scope's flow members not
    /// yet started.
    #[arg(long)]
    cancel_pending: bool,
    /// Share this lane across fairness keys by `--weight`.
    #[arg(long, group = "kind", value_name = "LANE")]
    fair_share: Option<String>,
    /// With `--fair-share`: `KEY=WEIGHT` (repeat for several).
    #[arg(long, value_name = "KEY=WEIGHT", value_parser = parse_amount)]
    weight: Vec<(String, u64)>,
    /// With `--fair-share`: the weight of keys not named (default 1).
    #[arg(long)]
    default_weight: Option<u32>,
    /// The whole spec as JSON, as `PUT .../policies/{name}` takes it.
    #[arg(long, group = "kind", value_name = "JSON")]
    spec: Option<String>,
}

/// `ff budget`.
#[derive(Debug, Args)]
pub struct BudgetArgs {
    #[command(subcommand)]
    command: BudgetCommand,
}

#[derive(Debug, Subcommand)]
enum BudgetCommand {
    /// Every budget of the namespace as it stands.
    Ls(ListArgs),
    /// One budget: usage, what remains, any breach.
    Show(NameArgs),
}

impl LimitsArgs {
    pub fn json(&self) -> bool {
        match &self.command {
            LimitsCommand::Ls(a) => a.output.json,
            LimitsCommand::Set(a) => a.output.json,
            LimitsCommand::Rm(a) => a.output.json,
        }
    }
}

impl BudgetArgs {
    pub fn json(&self) -> bool {
        match &self.command {
            BudgetCommand::Ls(a) => a.output.json,
            BudgetCommand::Show(a) => a.output.json,
        }
    }
}

fn parse_amount(text: &str) -> Result<(String, u64), String> {
    let (key, n) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=N"))?;
    let n = n
        .trim()
        .parse()
        .map_err(|_| format!("`{n}` is not a whole number"))?;
    Ok((key.trim().to_owned(), n))
}

pub async fn limits(args: LimitsArgs) -> anyhow::Result<()> {
    match args.command {
        LimitsCommand::Ls(args) => {
            let client = args.server.connect()?;
            let policies = client
                .policies()
                .await
                .map_err(|e| args.server.explain(e))?;
            if args.output.json {
                return print_json(&policies);
            }
            let mut table = Table::new(["NAME", "KIND", "VERSION", "UPDATED", "SPEC"]);
            for p in &policies {
                table.row([
                    p.name.clone(),
                    p.spec.kind().to_owned(),
                    p.version.to_string(),
                    time(p.updated_at),
                    describe(&p.spec),
                ]);
            }
            table.print();
            Ok(())
        }
        LimitsCommand::Set(args) => {
            let spec = spec_of(&args)?;
            let client = args.server.connect()?;
            let policy = client
                .put_policy(&args.name, &spec)
                .await
                .map_err(|e| args.server.explain(e))?;
            if args.output.json {
                return print_json(&policy);
            }
            print_policy(&policy);
            Ok(())
        }
        LimitsCommand::Rm(args) => {
            let client = args.server.connect()?;
            client
                .delete_policy(&args.name)
                .await
                .map_err(|e| args.server.explain(e))?;
            if args.output.json {
                return print_json(&serde_json::json!({ "removed": args.name }));
            }
            println!("removed {}", args.name);
            Ok(())
        }
    }
}

pub async fn budget(args: BudgetArgs) -> anyhow::Result<()> {
    match args.command {
        BudgetCommand::Ls(args) => {
            let client = args.server.connect()?;
            let policies = client
                .policies()
                .await
                .map_err(|e| args.server.explain(e))?;
            let mut statuses = Vec::new();
            for p in policies.iter().filter(|p| p.spec.kind() == "budget") {
                statuses.push(
                    client
                        .budget(&p.name)
                        .await
                        .map_err(|e| args.server.explain(e))?,
                );
            }
            if args.output.json {
                return print_json(&statuses);
            }
            let mut table = Table::new(["NAME", "SCOPE", "STANDING", "USED", "REMAINING"]);
            for s in &statuses {
                table.row([
                    s.policy.clone(),
                    s.scope.clone(),
                    standing(&s.standing),
                    amounts(s.used.iter().map(|(k, v)| (k, Some(*v)))),
                    amounts(s.remaining.iter().map(|(k, v)| (k, *v))),
                ]);
            }
            table.print();
            Ok(())
        }
        BudgetCommand::Show(args) => {
            let client = args.server.connect()?;
            let status = client
                .budget(&args.name)
                .await
                .map_err(|e| args.server.explain(e))?;
            if args.output.json {
                return print_json(&status);
            }
            print_budget(&status);
            Ok(())
        }
    }
}

/// The spec the flags describe.
fn spec_of(args: &SetArgs) -> anyhow::Result<PolicySpec> {
    let limits = Limits::default();
    let pattern = |flag: &str, text: &str| {
        KeyPattern::parse(text, &limits).map_err(|e| Failure::invalid(flag, e))
    };
    if let Some(text) = &args.spec {
        return Ok(serde_json::from_str(text).map_err(|e| Failure::invalid("--spec", e))?);
    }
    if let Some(text) = &args.concurrency {
        return Ok(PolicySpec::Concurrency(ConcurrencyPolicy {
            pattern: pattern("--concurrency", text)?,
            limit: args.limit.unwrap_or_default(),
        }));
    }
    if let Some(text) = &args.rate {
        let n = args.n.unwrap_or_default();
        return Ok(PolicySpec::Rate(RateLimitPolicy {
            pattern: pattern("--rate", text)?,
            n,
            window_ms: args.per.unwrap_or_default(),
            burst: args.burst.unwrap_or(n),
        }));
    }
    if let Some(scope) = &args.budget {
        let mut dims: BTreeMap<&str, DimensionLimit> = BTreeMap::new();
        for (dim, n) in &args.hard {
            dims.entry(dim).or_insert_with(|| dimension(dim)).hard = Some(*n);
        }
        for (dim, n) in &args.soft {
            dims.entry(dim).or_insert_with(|| dimension(dim)).soft = Some(*n);
        }
        return Ok(PolicySpec::Budget(BudgetPolicy {
            scope: scope.clone(),
            limits: dims.into_values().collect(),
            reset_every_ms: args.reset,
            cancel_pending: args.cancel_pending,
        }));
    }
    if let Some(lane) = &args.fair_share {
        let mut weights = BTreeMap::new();
        for (key, w) in &args.weight {
            let w = u32::try_from(*w).map_err(|_| Failure::invalid("--weight", "too large"))?;
            weights.insert(key.clone(), w);
        }
        return Ok(PolicySpec::FairShare(FairSharePolicy {
            lane: lane.clone(),
            weights,
            default_weight: args.default_weight.unwrap_or(1),
        }));
    }
    Err(Failure::invalid(
        "kind",
        "name one of --concurrency, --rate, --budget, --fair-share or --spec",
    )
    .into())
}

fn dimension(name: &str) -> DimensionLimit {
    DimensionLimit {
        dimension: name.to_owned(),
        soft: None,
        hard: None,
    }
}

/// One line a person reads for a spec.
fn describe(spec: &PolicySpec) -> String {
    let text = |p: &KeyPattern| {
        serde_json::to_value(p).map_or_else(
            |_| String::new(),
            |v| v.as_str().unwrap_or_default().to_owned(),
        )
    };
    match spec {
        PolicySpec::Concurrency(c) => format!("{} running per {}", c.limit, text(&c.pattern)),
        PolicySpec::Rate(r) => format!(
            "{} per {} ms per {} (burst {})",
            r.n,
            r.window_ms,
            text(&r.pattern),
            r.burst
        ),
        PolicySpec::Budget(b) => {
            let limits: Vec<String> = b
                .limits
                .iter()
                .map(|l| {
                    let soft = l.soft.map(|s| format!(" soft {s}")).unwrap_or_default();
                    let hard = l.hard.map(|h| format!(" hard {h}")).unwrap_or_default();
                    format!("{}{soft}{hard}", l.dimension)
                })
                .collect();
            format!("scope {}: {}", b.scope, limits.join(", "))
        }
        PolicySpec::FairShare(f) => {
            let weights: Vec<String> = f.weights.iter().map(|(k, w)| format!("{k}={w}")).collect();
            format!(
                "lane {} by weight {} (others {})",
                f.lane,
                weights.join(" "),
                f.default_weight
            )
        }
    }
}

fn print_policy(p: &Policy) {
    println!("policy    {}", p.name);
    println!("kind      {}", p.spec.kind());
    println!("version   {}", p.version);
    println!("spec      {}", describe(&p.spec));
}

fn print_budget(s: &BudgetStatus) {
    println!("budget     {}", s.policy);
    println!("scope      {}", s.scope);
    println!("standing   {}", standing(&s.standing));
    println!("window     from {}", time(s.window_start));
    println!(
        "used       {}",
        amounts(s.used.iter().map(|(k, v)| (k, Some(*v))))
    );
    println!(
        "remaining  {}",
        amounts(s.remaining.iter().map(|(k, v)| (k, *v)))
    );
}

fn standing(s: &Standing) -> String {
    match s {
        Standing::Within => "within".to_owned(),
        Standing::Soft { dimensions } => format!("soft breach: {}", dimensions.join(", ")),
        Standing::Hard { dimensions } => format!("HARD breach: {}", dimensions.join(", ")),
    }
}

fn amounts<'a>(items: impl Iterator<Item = (&'a String, Option<u64>)>) -> String {
    let parts: Vec<String> = items
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => format!("{k}=unlimited"),
        })
        .collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(" ")
    }
}
