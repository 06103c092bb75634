//! `throughput`: how many executions a second go from submitted to
//! completed, first with submission and processing apart (the rate of each
//! and of the whole window), then with producers and workers at once.

use std::time::Instant;

use anyhow::Context;

use super::{submit_all, submit_many, warm_up, Measured, Sizes, STALL};
use crate::ceiling::CeilingKind::Batched;
use crate::harness::Bed;
use crate::stats::per_sec;
use crate::worker::Pool;

/// Submits `count`, then starts the workers and waits until all completed.
pub async fn submit_then_drain(bed: &Bed, sizes: &Sizes) -> anyhow::Result<Measured> {
    warm_up(bed, sizes).await?;
    let started = Instant::now();
    submit_all(&*bed.backend, &bed.lane, sizes.count).await?;
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
