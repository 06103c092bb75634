//! `ff bench`: the benchmark harness. Runs a scenario (or `all`) against a
//! backend `--runs` times, each run on a fresh database with the engine
//! running, and reports medians; `--ceiling` measures the raw SQLite ceiling
//! before every run and sets each run's figures against it.
//!
//! - `scenarios`: what is measured, one module per scenario.
//! - `harness`: a run's backend, engine and lane; scratch directories.
//! - `worker`: the in-process no-op workers.
//! - `ceiling`: `--ceiling`, over `ff_backend_sqlite::ceiling`.
//! - `stats`: HDR histograms, the engine's lag buckets, medians.
//! - `machine`: the machine and build the figures came from.
//! - `report`, `markdown`, `svg`: text and JSON, `--markdown`, the chart.
//! - `progress`: the progress bar.

mod ceiling;
mod harness;
mod machine;
mod markdown;
mod progress;
mod report;
mod scenarios;
mod stats;
mod svg;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use ff_backend_sqlite::ceiling::CeilingCounts;

use crate::backend::SyncMode;
use crate::db_url::DatabaseUrl;
use ceiling::Ceiling;
use harness::{Bed, Target};
use report::{Backend, Report, VariantReport};
use scenarios::{Sizes, Variant};

/// `ff bench` options. Size flags apply to the scenario they name and are
/// all accepted by `all`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    scenario: Scenario,
    /// The database: `sqlite://PATH` or a plain path, `postgres://...` (a
    /// fresh schema per run) or `redis://...` / `redis+cluster://...` (a
    /// fresh key prefix per run) [default: a fresh temp SQLite file per run].
    #[arg(long = "database-url", visible_alias = "db")]
    database_url: Option<String>,
    /// Valkey/Redis partitions of each run's fresh prefix (default 1 on one
    /// server, 16 on a cluster).
    #[arg(long)]
    partitions: Option<u32>,
    /// SQLite durability, for the backend and the ceiling alike.
    #[arg(long, value_enum, default_value_t = SyncMode::Full)]
    synchronous: SyncMode,
    /// Measured runs per scenario; figures are their medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Print the report as JSON (and hide the progress bar).
    #[arg(long)]
    json: bool,
    /// Also write `benchmarks.md` and `benchmarks-latency.svg` into --markdown-dir.
    #[arg(long)]
    markdown: bool,
    #[arg(long, default_value = "docs", value_name = "DIR")]
    markdown_dir: PathBuf,
    /// Measure the raw SQLite ceiling too and report each figure against it.
    #[arg(long)]
    ceiling: bool,
    /// Transactions per half of the ceiling (single-row, and 100-row
    /// batches), measured before every run.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    ceiling_txns: u32,

    /// Executions run through the workers before each run is timed.
    #[arg(long, default_value_t = 2_000, help_heading = "Sizes")]
    warm_up: u64,
    /// Claim loops (every scenario).
    #[arg(long, default_value_t = 4, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..=256))]
    workers: u32,
    /// Executions per claim (every scenario).
    #[arg(long, default_value_t = 100, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..=1000))]
    claim_batch: u32,
    /// throughput: executions per variant.
    #[arg(long, default_value_t = 20_000, help_heading = "Sizes", value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// throughput: producers beside the workers in the concurrent variant.
    #[arg(long, default_value_t = 2, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..=64))]
    producers: u32,
    /// latency: submits per second.
    #[arg(long, default_value_t = 500, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rate: u32,
    /// latency: seconds of submitting at --rate.
    #[arg(long, default_value_t = 3, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..))]
    duration: u32,
    /// chain: flows created at once in the loaded variant.
    #[arg(long, default_value_t = 1_000, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..))]
    chains: u32,
    /// chain: flows run one at a time in the idle variant.
    #[arg(long, default_value_t = 20, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..))]
    idle_chains: u32,
    /// chain: nodes per flow.
    #[arg(long, default_value_t = 10, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(2..=10_000))]
    chain_length: u32,
    /// fanout: flows created at once.
    #[arg(long, default_value_t = 20, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..))]
    flows: u32,
    /// fanout: children between the root and the sink.
    #[arg(long, default_value_t = 100, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..=9_998))]
    fanout_width: u32,
    /// soak: executions processed in all.
    #[arg(long, default_value_t = 20_000, help_heading = "Sizes", value_parser = clap::value_parser!(u64).range(1..))]
    executions: u64,
    /// soak: waves the executions are split into.
    #[arg(long, default_value_t = 10, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    waves: u32,
    /// soak: executions per claim, small so each wave has many claim samples.
    #[arg(long, default_value_t = 10, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..=1000))]
    soak_claim_batch: u32,
}

/// `ff bench SCENARIO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Executions per second: submit then drain, and producers beside workers.
    Throughput,
    /// Enqueue → start latency at a fixed submit rate with idle workers.
    Latency,
    /// 10-node linear flows, idle and loaded: flows/s and promotion lag.
    Chain,
    /// 1 → 100 → 1 flows: flows/s and root complete → sink claimable.
    Fanout,
    /// Claim latency as processed executions grow: first wave vs last.
    Soak,
    /// Every scenario, in this order.
    All,
}

impl Scenario {
    fn variants(self) -> Vec<Variant> {
        use Variant::*;
        match self {
            Scenario::Throughput => vec![ThroughputDrain, ThroughputConcurrent],
            Scenario::Latency => vec![Latency],
            Scenario::Chain => vec![ChainIdle, ChainLoaded],
            Scenario::Fanout => vec![Fanout],
            Scenario::Soak => vec![Soak],
            Scenario::All => vec![
                ThroughputDrain,
                ThroughputConcurrent,
                Latency,
                ChainIdle,
                ChainLoaded,
                Fanout,
                Soak,
            ],
        }
    }
}

impl BenchArgs {
    fn sizes(&self) -> Sizes {
        Sizes {
            warm_up: self.warm_up,
            workers: self.workers,
            claim_batch: self.claim_batch,
            count: self.count,
            producers: self.producers,
            rate: self.rate,
            duration_secs: self.duration,
            chains: self.chains,
            idle_chains: self.idle_chains,
            chain_length: self.chain_length,
            flows: self.flows,
            fanout_width: self.fanout_width,
            executions: self.executions,
            waves: self.waves,
            soak_claim_batch: self.soak_claim_batch,
        }
    }
}

/// Runs the benchmark and prints (and with `--markdown` writes) the report.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let variants = args.scenario.variants();
    let sizes = args.sizes();
    let target = Target {
        database_url: args.database_url.clone(),
        synchronous: args.synchronous,
        partitions: args.partitions,
    };
    let server = target
        .database_url
        .as_deref()
        .map(DatabaseUrl::parse)
        .transpose()?
        .filter(|url| !matches!(url, DatabaseUrl::Sqlite(_)));
    if server.is_some() && args.ceiling {
        anyhow::bail!("--ceiling measures raw SQLite; leave it out when benchmarking a server");
    }
    let machine = machine::Machine::detect();
    let steps = variants.len() as u64 * u64::from(args.runs);
    let bar = progress::bar(steps, args.json)?;
    let counts = CeilingCounts {
        single_txns: args.ceiling_txns,
        batched_txns: args.ceiling_txns,
        ..CeilingCounts::default()
    };

    let mut scenarios = Vec::with_capacity(variants.len());
    let mut all_ceilings = Vec::new();
    for variant in variants {
        let title = format!("{}/{}", variant.scenario(), variant.name());
        let mut runs = Vec::with_capacity(args.runs as usize);
        let mut ceilings = Vec::with_capacity(args.runs as usize);
        for run in 1..=args.runs {
            if args.ceiling {
                bar.set_message(format!("{title} run {run}/{}: the ceiling", args.runs));
                ceilings.push(ceiling::measure(args.synchronous, counts).await?);
            }
            bar.set_message(format!("{title} run {run}/{}", args.runs));
            let bed = Bed::open(&target, variant.scenario()).await?;
            let measured = variant.run(&bed, &sizes).await;
            bed.close().await;
            runs.push(measured.with_context(|| format!("{title}, run {run}"))?);
            bar.inc(1);
        }
        scenarios.push(VariantReport::aggregate(variant, &sizes, &runs, &ceilings));
        all_ceilings.extend(ceilings);
    }
    bar.finish_and_clear();

    let report = Report {
        command: command_line(),
        generated_at: report::utc_now(),
        build: machine::Build::detect(),
        machine,
        backend: match &server {
            Some(DatabaseUrl::Postgres(url)) => Backend {
                name: "postgres",
                version: ff_backend_postgres::server_version(url).await?,
                database: target.describe(),
                synchronous: "synchronous_commit=on".to_owned(),
            },
            Some(DatabaseUrl::Valkey(url)) => {
                let info = ff_backend_valkey::server_info(url).await?;
                Backend {
                    name: "valkey",
                    version: info.version,
                    database: target.describe(),
                    synchronous: info.persistence,
                }
            }
            _ => Backend {
                name: "sqlite",
                version: ff_backend_sqlite::ceiling::sqlite_version().to_owned(),
                database: target.describe(),
                synchronous: ceiling::sync_label(args.synchronous).to_owned(),
            },
        },
        runs: args.runs,
        sizes,
        ceiling: Ceiling::median_of(&all_ceilings),
        scenarios,
    };
    if args.markdown {
        markdown::write(&report, &args.markdown_dir)?;
        eprintln!(
            "wrote {} and {}",
            args.markdown_dir.join(markdown::PAGE).display(),
            args.markdown_dir.join(markdown::CHART).display()
        );
    }
    if args.json {
        println!("{}", report.to_json()?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(ExitCode::SUCCESS)
}

/// This invocation as a command to rerun, the program named `ff`.
fn command_line() -> String {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .map(|arg| crate::db_url::redacted(&arg))
        .collect();
    std::iter::once("ff".to_owned())
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}
