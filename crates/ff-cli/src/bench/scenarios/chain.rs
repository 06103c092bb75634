//! `chain`: linear flows `a0 → a1 → … → a9` with no-op handlers, the engine's
//! completion listener promoting each node as its parent completes. Idle: one
//! flow at a time, so a hop costs only the pipeline itself. Loaded: many
//! flows at once, so hops queue behind each other's writes.
//!
//! Promotion lag comes from the engine's own histogram (parent's commit →
//! the cascade that made the child claimable, both on the backend's clock),
//! the same figure `/metrics` exports.

use std::time::{Duration, Instant};

use anyhow::Context;
use ff_core::flow::{EdgeSpec, FlowSpec, NodeSpec};
use ff_core::FlowOps;
use futures::StreamExt;

use super::{noop, warm_up, Measured, Sizes, STALL};
use crate::bench::ceiling::CeilingKind::{Batched, Single};
use crate::bench::harness::Bed;
use crate::bench::stats::{lag_between, per_sec, Dist};
use crate::bench::worker::Pool;

/// Flows run one at a time before the measured window.
const WARM_UP_FLOWS: u32 = 3;
/// `create_flow` calls in flight when creating many flows.
const CREATE_IN_FLIGHT: usize = 16;

/// A linear flow of `length` nodes on `lane`.
pub fn spec(lane: &str, length: u32) -> FlowSpec {
    let key = |i: u32| format!("a{i}");
    let nodes = (0..length)
        .map(|i| NodeSpec::new(key(i), noop(lane, u64::from(i))))
        .collect();
    let edges = (1..length)
        .map(|i| EdgeSpec::new(key(i - 1), key(i)))
        .collect();
    FlowSpec::new(nodes, edges)
}

/// One flow at a time.
pub async fn idle(bed: &Bed, sizes: &Sizes) -> anyhow::Result<Measured> {
    warm_up(bed, sizes).await?;
    let pool = start_pool(bed, sizes);
    let result = async {
        one_at_a_time(bed, &pool, sizes, WARM_UP_FLOWS).await?;
        let (before, started) = (bed.engine.stats(), Instant::now());
        one_at_a_time(bed, &pool, sizes, sizes.idle_chains).await?;
        let elapsed = started.elapsed();
        let after = settled(bed, &before, sizes, sizes.idle_chains).await;
        let flows = u64::from(sizes.idle_chains);
        let mut measured = Measured::default();
        measured.figure("flows_per_sec", "flows/s", per_sec(flows, elapsed), None);
        measured.figure(
            "executions_per_sec",
            "jobs/s",
            per_sec(flows * u64::from(sizes.chain_length), elapsed),
            Some(Single),
        );
        lag_figures(&mut measured, &before, &after);
        Ok(measured)
    }
    .await;
    pool.stop().await;
    result
}

/// `chains` flows created at once.
pub async fn loaded(bed: &Bed, sizes: &Sizes) -> anyhow::Result<Measured> {
    warm_up(bed, sizes).await?;
    let pool = start_pool(bed, sizes);
    let result = async {
        one_at_a_time(bed, &pool, sizes, WARM_UP_FLOWS).await?;
        let (before, started) = (bed.engine.stats(), Instant::now());
        let target = pool.tally.completed() + nodes(sizes, sizes.chains);
        create_many(&*bed.backend, sizes.chains, || {
            spec(&bed.lane, sizes.chain_length)
        })
        .await?;
        pool.tally.wait_for(target, STALL).await?;
        let elapsed = started.elapsed();
        let after = settled(bed, &before, sizes, sizes.chains).await;
        let flows = u64::from(sizes.chains);
        let mut measured = Measured::default();
        measured.figure("flows_per_sec", "flows/s", per_sec(flows, elapsed), None);
        measured.figure(
            "executions_per_sec",
            "jobs/s",
            per_sec(nodes(sizes, sizes.chains), elapsed),
            Some(Batched),
        );
        lag_figures(&mut measured, &before, &after);
        Ok(measured)
    }
    .await;
    pool.stop().await;
    result
}

fn start_pool(bed: &Bed, sizes: &Sizes) -> Pool {
    Pool::start(
        bed.backend.clone(),
        &bed.lane,
        sizes.workers,
        sizes.claim_batch,
        None,
    )
}

fn nodes(sizes: &Sizes, flows: u32) -> u64 {
    u64::from(flows) * u64::from(sizes.chain_length)
}

/// Runs `flows` chains one after another, each to its last node.
async fn one_at_a_time(bed: &Bed, pool: &Pool, sizes: &Sizes, flows: u32) -> anyhow::Result<()> {
    for _ in 0..flows {
        let target = pool.tally.completed() + u64::from(sizes.chain_length);
        bed.backend
            .create_flow(spec(&bed.lane, sizes.chain_length))
            .await
            .context("creating a chain")?;
        pool.tally.wait_for(target, STALL).await?;
    }
    Ok(())
}

/// Creates `flows` flows from `make`, a few calls in flight.
pub async fn create_many(
    backend: &dyn FlowOps,
    flows: u32,
    make: impl Fn() -> FlowSpec,
) -> anyhow::Result<Vec<ff_core::flow::FlowCreated>> {
    let mut created = futures::stream::iter(0..flows)
        .map(|_| backend.create_flow(make()))
        .buffer_unordered(CREATE_IN_FLIGHT);
    let mut all = Vec::with_capacity(flows as usize);
    while let Some(answer) = created.next().await {
        all.push(answer.context("creating a flow")?);
    }
    Ok(all)
}

/// The engine's counters once every promotion of `flows` chains since
/// `before` is in the histogram. The listener records a lag just after its
/// cascade returns, which can trail the last node's completion by a hair;
/// after a second the snapshot is taken as is.
async fn settled(
    bed: &Bed,
    before: &ff_engine::StatsSnapshot,
    sizes: &Sizes,
    flows: u32,
) -> ff_engine::StatsSnapshot {
    let promotions = u64::from(flows) * u64::from(sizes.chain_length - 1);
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let now = bed.engine.stats();
        let seen = now.promotion_lag.count - before.promotion_lag.count;
        if seen >= promotions || Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The engine's promotion lag over the window, and how many cascades the
/// reconciler (not the push path) had to do.
fn lag_figures(
    measured: &mut Measured,
    before: &ff_engine::StatsSnapshot,
    after: &ff_engine::StatsSnapshot,
) {
    measured.figure(
        "reconciled_cascades",
        "count",
        after.reconciled.saturating_sub(before.reconciled) as f64,
        None,
    );
    measured.dist(
        "promotion_lag",
        "parent committed → child claimable (engine histogram, backend clock)",
        Dist::Engine(lag_between(&before.promotion_lag, &after.promotion_lag)),
    );
}
