//! `ff bench`'s command line: the scenario, where to run it, and the sizes.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::opener::Synchronous;
use crate::scenarios::{Sizes, Variant};

/// `ff bench` options. Size flags apply to the scenario they name and are
/// all accepted by `all`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub(crate) scenario: Scenario,
    /// The database: `sqlite://PATH` or a plain path, `postgres://...` (a
    /// fresh schema per run) or `redis://...` / `redis+cluster://...` (a
    /// fresh key prefix per run) [default: a fresh temp SQLite file per run].
    #[arg(long = "database-url", visible_alias = "db")]
    pub(crate) database_url: Option<String>,
    /// Valkey/Redis partitions of each run's fresh prefix (default 1 on one
    /// server, 16 on a cluster).
    #[arg(long)]
    pub(crate) partitions: Option<u32>,
    /// SQLite durability, for the backend and the ceiling alike.
    #[arg(long, value_enum, default_value_t = Synchronous::Full)]
    pub(crate) synchronous: Synchronous,
    /// Measured runs per scenario; figures are their medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) runs: u32,
    /// Print the report as JSON (and hide the progress bar).
    #[arg(long)]
    pub(crate) json: bool,
    /// Also write `benchmarks.md` and `benchmarks-latency.svg` into --markdown-dir.
    #[arg(long)]
    pub(crate) markdown: bool,
    #[arg(long, default_value = "docs", value_name = "DIR")]
    pub(crate) markdown_dir: PathBuf,
    /// Measure the raw SQLite ceiling too and report each figure against it.
    #[arg(long)]
    pub(crate) ceiling: bool,
    /// Transactions per half of the ceiling (single-row, and 100-row
    /// batches), measured before every run.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) ceiling_txns: u32,

    /// Executions run through the workers before each run is timed.
    #[arg(long, default_value_t = 2_000, help_heading = "Sizes")]
    pub(crate) warm_up: u64,
    /// Claim loops (every scenario).
    #[arg(long, default_value_t = 4, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub(crate) workers: u32,
    /// Executions per claim (every scenario).
    #[arg(long, default_value_t = 100, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) claim_batch: u32,
    /// throughput: executions per variant.
    #[arg(long, default_value_t = 20_000, help_heading = "Sizes", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count: u64,
    /// throughput: producers beside the workers in the concurrent variant.
    #[arg(long, default_value_t = 2, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) producers: u32,
    /// latency: submits per second.
    #[arg(long, default_value_t = 500, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) rate: u32,
    /// latency: seconds of submitting at --rate.
    #[arg(long, default_value_t = 3, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) duration: u32,
    /// chain: flows created at once in the loaded variant.
    #[arg(long, default_value_t = 1_000, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) chains: u32,
    /// chain: flows run one at a time in the idle variant.
    #[arg(long, default_value_t = 20, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) idle_chains: u32,
    /// chain: nodes per flow.
    #[arg(long, default_value_t = 10, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(2..=10_000))]
    pub(crate) chain_length: u32,
    /// fanout: flows created at once.
    #[arg(long, default_value_t = 20, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) flows: u32,
    /// fanout: children between the root and the sink.
    #[arg(long, default_value_t = 100, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..=9_998))]
    pub(crate) fanout_width: u32,
    /// soak: executions processed in all.
    #[arg(long, default_value_t = 20_000, help_heading = "Sizes", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) executions: u64,
    /// soak: waves the executions are split into.
    #[arg(long, default_value_t = 10, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) waves: u32,
    /// soak: executions per claim, small so each wave has many claim samples.
    #[arg(long, default_value_t = 10, help_heading = "Sizes", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) soak_claim_batch: u32,
    /// throughput: also run the submit-then-drain shape with every
    /// execution under a concurrency key (a generous limit) and one of 10
    /// fairness keys sharing the lane, to compare with the plain run.
    #[arg(long, help_heading = "Sizes")]
    pub(crate) limits: bool,
    /// suspend: suspend → signal → resumed claim cycles measured.
    #[arg(long, default_value_t = 500, help_heading = "Sizes", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) suspensions: u64,
}

/// `ff bench SCENARIO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
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
    /// Signal → resumed claim of a suspended execution.
    Suspend,
    /// Every scenario, in this order.
    All,
}

impl Scenario {
    pub(crate) fn variants(self, limits: bool) -> Vec<Variant> {
        use Variant::*;
        let mut variants = self.base_variants();
        if limits {
            if let Some(at) = variants.iter().position(|v| *v == ThroughputDrain) {
                variants.insert(at + 1, ThroughputLimited);
            }
        }
        variants
    }

    fn base_variants(self) -> Vec<Variant> {
        use Variant::*;
        match self {
            Scenario::Throughput => vec![ThroughputDrain, ThroughputConcurrent],
            Scenario::Latency => vec![Latency],
            Scenario::Chain => vec![ChainIdle, ChainLoaded],
            Scenario::Fanout => vec![Fanout],
            Scenario::Soak => vec![Soak],
            Scenario::Suspend => vec![Suspend],
            Scenario::All => vec![
                ThroughputDrain,
                ThroughputConcurrent,
                Latency,
                ChainIdle,
                ChainLoaded,
                Fanout,
                Soak,
                Suspend,
            ],
        }
    }
}

impl BenchArgs {
    pub(crate) fn sizes(&self) -> Sizes {
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
            suspensions: self.suspensions,
        }
    }
}
