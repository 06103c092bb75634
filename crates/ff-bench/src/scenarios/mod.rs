//! The scenarios. Each measured unit is a [`Variant`]: one shape of work run
//! on its own fresh [`Bed`], warmed up first, returning what one run
//! measured ([`Measured`]); the caller repeats it `--runs` times.
//!
//! - `throughput`: submit then drain, and producers beside workers.
//! - `latency`: enqueue → start at a fixed submit rate, workers idle.
//! - `chain`: 10-node linear flows, idle and loaded; promotion lag.
//! - `fanout`: 1 → 100 → 1 flows; root complete → sink claimable.
//! - `soak`: claim latency as processed executions accumulate.
//! - `suspend`: signal → resumed claim of a suspended execution.

pub mod chain;
pub mod fanout;
pub mod latency;
pub mod soak;
pub mod suspend;
pub mod throughput;

use std::time::Duration;

use anyhow::Context;
use ff_core::{EngineBackend, JsonText, SubmitRequest};
use futures::StreamExt;
use serde::Serialize;

use super::ceiling::CeilingKind;
use super::harness::{Bed, KIND};
use super::stats::Dist;
use super::worker::Pool;

/// The batch limit of `submit_batch`.
pub const SUBMIT_BATCH: u64 = 1_000;
/// Batches submitted concurrently by one producer.
pub const SUBMIT_IN_FLIGHT: usize = 4;
/// A run fails when nothing completes for this long.
pub const STALL: Duration = Duration::from_secs(60);

/// Sizes and concurrency of every scenario (each reads its own).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sizes {
    /// Executions run through the workers before anything is timed.
    pub warm_up: u64,
    pub workers: u32,
    pub claim_batch: u32,
    pub count: u64,
    pub producers: u32,
    pub rate: u32,
    pub duration_secs: u32,
    pub chains: u32,
    pub idle_chains: u32,
    pub chain_length: u32,
    pub flows: u32,
    pub fanout_width: u32,
    pub executions: u64,
    pub waves: u32,
    pub soak_claim_batch: u32,
    pub suspensions: u64,
}

/// One shape of work the report shows as a row group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    ThroughputDrain,
    ThroughputLimited,
    ThroughputConcurrent,
    Latency,
    ChainIdle,
    ChainLoaded,
    Fanout,
    Soak,
    Suspend,
}

impl Variant {
    pub fn scenario(self) -> &'static str {
        match self {
            Variant::ThroughputDrain
            | Variant::ThroughputLimited
            | Variant::ThroughputConcurrent => "throughput",
            Variant::Latency => "latency",
            Variant::ChainIdle | Variant::ChainLoaded => "chain",
            Variant::Fanout => "fanout",
            Variant::Soak => "soak",
            Variant::Suspend => "suspend",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Variant::ThroughputDrain => "submit-then-drain",
            Variant::ThroughputLimited => "submit-then-drain-limited",
            Variant::ThroughputConcurrent => "concurrent",
            Variant::Latency => "fixed-rate",
            Variant::ChainIdle => "idle",
            Variant::ChainLoaded => "loaded",
            Variant::Fanout => "loaded",
            Variant::Soak => "waves",
            Variant::Suspend => "signal-to-resume",
        }
    }

    /// What the variant does, in one line, with its sizes.
    pub fn describe(self, s: &Sizes) -> String {
        let workers = format!("{} workers claiming up to {}", s.workers, s.claim_batch);
        match self {
            Variant::ThroughputDrain => format!(
                "{} executions submitted in batches of {SUBMIT_BATCH}, then {workers} and completing each",
                s.count
            ),
            Variant::ThroughputLimited => format!(
                "as submit-then-drain, each execution under concurrency key `bench` (limit {}) and one of {} fairness keys sharing the lane by weight",
                throughput::GENEROUS_LIMIT,
                throughput::FAIRNESS_KEYS
            ),
            Variant::ThroughputConcurrent => format!(
                "{} producers submitting {} executions in batches of {SUBMIT_BATCH} while {workers} complete them",
                s.producers, s.count
            ),
            Variant::Latency => format!(
                "one submit every {:.1} ms ({}/s) for {} s, {workers} waiting in claim_wait",
                1_000.0 / f64::from(s.rate.max(1)),
                s.rate,
                s.duration_secs
            ),
            Variant::ChainIdle => format!(
                "{} linear flows of {} nodes, one at a time, {workers}",
                s.idle_chains, s.chain_length
            ),
            Variant::ChainLoaded => format!(
                "{} linear flows of {} nodes created at once, {workers}",
                s.chains, s.chain_length
            ),
            Variant::Fanout => format!(
                "{} flows of 1 root → {} children → 1 sink (all_of) created at once, {workers}",
                s.flows, s.fanout_width
            ),
            Variant::Soak => format!(
                "{} executions in {} waves (submit a wave, drain it), {} workers claiming up to {}",
                s.executions, s.waves, s.workers, s.soak_claim_batch
            ),
            Variant::Suspend => format!(
                "{} executions one at a time: claim, suspend, signal by token, the waiting claim gets it back",
                s.suspensions
            ),
        }
    }

    /// Runs the variant once on `bed`.
    pub async fn run(self, bed: &Bed, sizes: &Sizes) -> anyhow::Result<Measured> {
        match self {
            Variant::ThroughputDrain => throughput::submit_then_drain(bed, sizes, false).await,
            Variant::ThroughputLimited => throughput::submit_then_drain(bed, sizes, true).await,
            Variant::ThroughputConcurrent => throughput::concurrent(bed, sizes).await,
            Variant::Latency => latency::run(bed, sizes).await,
            Variant::ChainIdle => chain::idle(bed, sizes).await,
            Variant::ChainLoaded => chain::loaded(bed, sizes).await,
            Variant::Fanout => fanout::run(bed, sizes).await,
            Variant::Soak => soak::run(bed, sizes).await,
            Variant::Suspend => suspend::run(bed, sizes).await,
        }
    }
}

/// One number one run measured.
#[derive(Debug, Clone)]
pub struct Figure {
    pub name: &'static str,
    pub unit: &'static str,
    pub value: f64,
    /// The ceiling this figure is a fraction of, when one matches.
    pub ceiling: Option<CeilingKind>,
}

/// One distribution one run measured.
#[derive(Debug, Clone)]
pub struct NamedDist {
    pub name: &'static str,
    /// What one sample is.
    pub about: &'static str,
    pub dist: Dist,
}

/// Everything one run of a variant measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub figures: Vec<Figure>,
    pub dists: Vec<NamedDist>,
}

impl Measured {
    pub fn figure(
        &mut self,
        name: &'static str,
        unit: &'static str,
        value: f64,
        ceiling: Option<CeilingKind>,
    ) {
        self.figures.push(Figure {
            name,
            unit,
            value,
            ceiling,
        });
    }

    pub fn dist(&mut self, name: &'static str, about: &'static str, dist: Dist) {
        self.dists.push(NamedDist { name, about, dist });
    }
}

/// A no-op execution on `lane`.
pub fn noop(lane: &str, i: u64) -> SubmitRequest {
    SubmitRequest::new(lane, KIND, JsonText::unchecked(format!("{{\"i\":{i}}}")))
}

/// Submits `count` no-op executions to `lane` in batches of
/// [`SUBMIT_BATCH`], a few batches in flight.
pub async fn submit_many(
    backend: &dyn EngineBackend,
    lane: &str,
    count: u64,
    in_flight: usize,
) -> anyhow::Result<()> {
    submit_made(backend, lane, count, in_flight, noop).await
}

/// [`submit_many`] of the executions `make` gives for each index.
pub async fn submit_made(
    backend: &dyn EngineBackend,
    lane: &str,
    count: u64,
    in_flight: usize,
    make: fn(&str, u64) -> SubmitRequest,
) -> anyhow::Result<()> {
    let batches = (0..count.div_ceil(SUBMIT_BATCH))
        .map(|b| b * SUBMIT_BATCH..((b + 1) * SUBMIT_BATCH).min(count));
    let mut answers = futures::stream::iter(batches)
        .map(|range| {
            let requests = range.map(|i| make(lane, i)).collect();
            backend.submit_batch(requests)
        })
        .buffer_unordered(in_flight.max(1));
    while let Some(answer) = answers.next().await {
        answer.context("submitting a batch")?;
    }
    Ok(())
}

/// Runs `sizes.warm_up` executions through a pool on the bed's lane, so caches,
/// the WAL and the statement caches are warm before anything is timed.
pub async fn warm_up(bed: &Bed, sizes: &Sizes) -> anyhow::Result<()> {
    let pool = Pool::start(
        bed.backend.clone(),
        &bed.lane,
        sizes.workers,
        sizes.claim_batch,
        None,
    );
    let submitted = submit_many(&*bed.backend, &bed.lane, sizes.warm_up, SUBMIT_IN_FLIGHT).await;
    let drained = match submitted {
        Ok(()) => pool.tally.wait_for(sizes.warm_up, STALL).await,
        Err(error) => Err(error),
    };
    pool.stop().await;
    drained.context("warming up")
}

/// Submits with the usual concurrency of one producer.
pub async fn submit_all(backend: &dyn EngineBackend, lane: &str, count: u64) -> anyhow::Result<()> {
    submit_many(backend, lane, count, SUBMIT_IN_FLIGHT).await
}
