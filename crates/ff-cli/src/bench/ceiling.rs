//! `--ceiling`: the raw SQLite ceiling measured in the same run, with the
//! same durability, by `ff_backend_sqlite::ceiling` on a scratch file; the
//! median of `--runs` measurements.

use anyhow::Context;
use ff_backend_sqlite::ceiling::{self, CeilingCounts, CeilingRates};
use serde::Serialize;

use super::harness::Scratch;
use super::stats::median;
use crate::backend::SyncMode;

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

pub fn sync_label(mode: SyncMode) -> &'static str {
    match mode {
        SyncMode::Full => "full",
        SyncMode::Normal => "normal",
    }
}

/// Measures the ceiling `runs` times, each on a new scratch file, and keeps
/// the median of each figure.
pub async fn measure(
    synchronous: SyncMode,
    counts: CeilingCounts,
    runs: u32,
) -> anyhow::Result<Ceiling> {
    let mut all = Vec::new();
    for _ in 0..runs.max(1) {
        let scratch = Scratch::new("ceiling")?;
        let path = scratch.path().join("ceiling.db");
        let rates: CeilingRates = tokio::task::spawn_blocking(move || {
            ceiling::measure(&path, synchronous.into(), counts)
        })
        .await
        .context("the ceiling task failed")?
        .context("measuring the SQLite ceiling")?;
        drop(scratch);
        all.push(rates);
    }
    let med = |f: fn(&CeilingRates) -> f64| median(&all.iter().map(f).collect::<Vec<_>>());
    Ok(Ceiling {
        synchronous: sync_label(synchronous),
        single_txns: counts.single_txns,
        batched_txns: counts.batched_txns,
        batch_size: counts.batch_size,
        single_per_sec: med(|r| r.single_per_sec).unwrap_or_default(),
        batched_rows_per_sec: med(|r| r.batched_rows_per_sec).unwrap_or_default(),
        single_commit_p50_ms: med(|r| r.single_commit_p50.as_secs_f64() * 1e3).unwrap_or_default(),
        single_commit_p99_ms: med(|r| r.single_commit_p99.as_secs_f64() * 1e3).unwrap_or_default(),
    })
}
