//! `--ceiling`: the raw SQLite ceiling measured in the same run, with the
//! same durability, by `raw_sqlite` on a scratch file.
//!
//! A shared disk's speed drifts from minute to minute (a virtual disk's
//! fsync can vary tenfold), so the ceiling is measured right before every
//! measured run and each figure is divided by its own run's ceiling; the
//! report keeps the median of those fractions.

mod raw_sqlite;

use anyhow::Context;
use serde::Serialize;

use crate::harness::Scratch;
use crate::opener::Synchronous;
use crate::stats::median;
pub use raw_sqlite::CeilingCounts;
use raw_sqlite::CeilingRates;

/// Which ceiling a figure is a fraction of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CeilingKind {
    /// One INSERT + UPDATE per transaction: work that waits on each commit.
    Single,
    /// The pair for `batch_size` rows per transaction: group-committed work.
    Batched,
}

impl CeilingKind {
    pub fn label(self) -> &'static str {
        match self {
            CeilingKind::Single => "single",
            CeilingKind::Batched => "batched",
        }
    }
}

/// The ceiling as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    pub synchronous: &'static str,
    pub single_txns: u32,
    pub batched_txns: u32,
    pub batch_size: u32,
    /// Single-row transactions per second.
    pub single_per_sec: f64,
    /// Rows per second in batched transactions.
    pub batched_rows_per_sec: f64,
    /// One single-row transaction, BEGIN to durable COMMIT.
    pub single_commit_p50_ms: f64,
    pub single_commit_p99_ms: f64,
}

impl Ceiling {
    /// The rate a figure matching `kind` is divided by.
    pub fn rate(&self, kind: CeilingKind) -> f64 {
        match kind {
            CeilingKind::Single => self.single_per_sec,
            CeilingKind::Batched => self.batched_rows_per_sec,
        }
    }
}

/// Measures the ceiling once, on a new scratch file.
pub async fn measure(synchronous: Synchronous, counts: CeilingCounts) -> anyhow::Result<Ceiling> {
    let scratch = Scratch::new("ceiling")?;
    let path = scratch.path().join("ceiling.db");
    let rates: CeilingRates =
        tokio::task::spawn_blocking(move || raw_sqlite::measure(&path, synchronous, counts))
            .await
            .context("the ceiling task failed")?
            .context("measuring the SQLite ceiling")?;
    Ok(Ceiling {
        synchronous: synchronous.label(),
        single_txns: counts.single_txns,
        batched_txns: counts.batched_txns,
        batch_size: counts.batch_size,
        single_per_sec: rates.single_per_sec,
        batched_rows_per_sec: rates.batched_rows_per_sec,
        single_commit_p50_ms: rates.single_commit_p50.as_secs_f64() * 1e3,
        single_commit_p99_ms: rates.single_commit_p99.as_secs_f64() * 1e3,
    })
}

impl Ceiling {
    /// Each figure's median over `all` (`None` when empty).
    pub fn median_of<'a>(all: impl IntoIterator<Item = &'a Ceiling>) -> Option<Ceiling> {
        let all: Vec<&Ceiling> = all.into_iter().collect();
        let first = *all.first()?;
        let med = |f: fn(&Ceiling) -> f64| {
            median(&all.iter().map(|c| f(c)).collect::<Vec<_>>()).unwrap_or_default()
        };
        Some(Ceiling {
            single_per_sec: med(|c| c.single_per_sec),
            batched_rows_per_sec: med(|c| c.batched_rows_per_sec),
            single_commit_p50_ms: med(|c| c.single_commit_p50_ms),
            single_commit_p99_ms: med(|c| c.single_commit_p99_ms),
            ..first.clone()
        })
    }
}
