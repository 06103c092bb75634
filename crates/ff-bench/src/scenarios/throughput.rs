//! `throughput`: how many executions a second go from submitted to
//! completed, first with submission and processing apart (the rate of each
//! and of the whole window), then with producers and workers at once.

use std::time::Instant;

use anyhow::Context;

use ff_core::flow_control::{ConcurrencyPolicy, FairSharePolicy, KeyPattern, PolicySpec};
use ff_core::SubmitRequest;

use super::{noop, submit_made, submit_many, warm_up, Measured, Sizes, STALL, SUBMIT_IN_FLIGHT};
use crate::ceiling::CeilingKind::Batched;
use crate::harness::Bed;
use crate::stats::per_sec;
use crate::worker::Pool;

/// The concurrency limit of the limited run: more than the workers ever
/// hold, so it costs its checks and never holds work back.
pub const GENEROUS_LIMIT: u32 = 100_000;

/// The fairness keys the limited run spreads its executions over.
pub const FAIRNESS_KEYS: u64 = 10;

/// A no-op execution under the limited run's concurrency key and one of
/// its fairness keys.
fn limited(lane: &str, i: u64) -> SubmitRequest {
    noop(lane, i)
        .concurrency_key("bench")
        .fairness_key(format!("tenant-{}", i % FAIRNESS_KEYS))
}

/// The limited run's policies: the generous limit, and the lane shared
/// across the fairness keys.
async fn put_policies(bed: &Bed) -> anyhow::Result<()> {
    let ns = ff_core::DEFAULT_NAMESPACE;
    let limits = ff_core::Limits::default();
    let spec = PolicySpec::Concurrency(ConcurrencyPolicy {
        pattern: KeyPattern::parse("bench", &limits)?,
        limit: GENEROUS_LIMIT,
    });
    bed.backend.put_policy(ns, "bench", spec).await?;
    let fair = PolicySpec::FairShare(FairSharePolicy {
        lane: bed.lane.clone(),
        weights: Default::default(),
        default_weight: 1,
    });
    bed.backend.put_policy(ns, "bench-shares", fair).await?;
    Ok(())
}

/// Submits `count`, then starts the workers and waits until all completed;
/// `limited`, under a concurrency key and fairness keys.
pub async fn submit_then_drain(
    bed: &Bed,
    sizes: &Sizes,
    limited_run: bool,
) -> anyhow::Result<Measured> {
    let make = if limited_run {
        put_policies(bed).await.context("setting the policies")?;
        limited
    } else {
        noop
    };
    warm_up(bed, sizes).await?;
    let started = Instant::now();
    submit_made(
        &*bed.backend,
        &bed.lane,
        sizes.count,
        SUBMIT_IN_FLIGHT,
        make,
    )
    .await?;
    let submitted = started.elapsed();

    let drain_started = Instant::now();
    let pool = Pool::start(
        bed.backend.clone(),
        &bed.lane,
        sizes.workers,
        sizes.claim_batch,
        None,
    );
    let drained = pool.tally.wait_for(sizes.count, STALL).await;
    let drain = drain_started.elapsed();
    let total = started.elapsed();
    pool.stop().await;
    drained.context("draining")?;

    let mut measured = Measured::default();
    measured.figure(
        "jobs_per_sec",
        "jobs/s",
        per_sec(sizes.count, total),
        Some(Batched),
    );
    measured.figure(
        "submit_per_sec",
        "jobs/s",
        per_sec(sizes.count, submitted),
        Some(Batched),
    );
    measured.figure(
        "claim_complete_per_sec",
        "jobs/s",
        per_sec(sizes.count, drain),
        Some(Batched),
    );
    Ok(measured)
}

/// Producers submit while the workers run; the window ends at the last
/// completion.
pub async fn concurrent(bed: &Bed, sizes: &Sizes) -> anyhow::Result<Measured> {
    warm_up(bed, sizes).await?;
    let pool = Pool::start(
        bed.backend.clone(),
        &bed.lane,
        sizes.workers,
        sizes.claim_batch,
        None,
    );
    let started = Instant::now();
    let producers = sizes.producers.max(1);
    let shares = (0..producers).map(|p| {
        let p = u64::from(p);
        let share =
            sizes.count / u64::from(producers) + u64::from(p < sizes.count % u64::from(producers));
        // One batch at a time per producer: the producers are the concurrency.
        submit_many(&*bed.backend, &bed.lane, share, 1)
    });
    let submitted = futures::future::try_join_all(shares).await;
    let drained = match submitted {
        Ok(_) => pool.tally.wait_for(sizes.count, STALL).await,
        Err(error) => Err(error),
    };
    let total = started.elapsed();
    pool.stop().await;
    drained.context("producing and draining")?;

    let mut measured = Measured::default();
    measured.figure(
        "jobs_per_sec",
        "jobs/s",
        per_sec(sizes.count, total),
        Some(Batched),
    );
    Ok(measured)
}
