//! `chain`: linear flows `a0 → a1 → … → a9` with no-op handlers, the engine's
//! completion listener promoting each node as its parent completes. Idle: one
//! flow at a time, so a hop costs only the pipeline itself. Loaded: many
//! flows at once, so hops queue behind each other's writes.
//!
//! Promotion lag comes from the engine's own histogram (parent's commit →
//! the cascade that made the child claimable, both on the backend's clock),
//! the same figure `/metrics` exports. That histogram sees only the
//! listener's and the reconciler's cascades, not the nodes the reconciler's
//! blocked-node scan promotes when cascades fall behind, so every hop's lag
//! is also read back from the rows (child `ready_at` − parent `finished_at`).

use std::time::{Duration, Instant};

use anyhow::Context;
use ff_core::flow::{EdgeSpec, FlowCreated, FlowSpec, NodeSpec};
use ff_core::FlowOps;
use futures::StreamExt;

use super::{noop, warm_up, Measured, Sizes, STALL};
use crate::ceiling::CeilingKind::{Batched, Single};
use crate::harness::Bed;
use crate::stats::{lag_between, per_sec, Dist, Latencies};
use crate::worker::Pool;

/// Flows run one at a time before the measured window.
const WARM_UP_FLOWS: u32 = 3;
/// `create_flow` calls in flight when creating many flows.
const CREATE_IN_FLIGHT: usize = 16;
/// `get_execution` calls in flight when reading hops back.
const READS_IN_FLIGHT: usize = 16;

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
    measure(bed, sizes, sizes.idle_chains, false).await
}

/// `chains` flows created at once.
pub async fn loaded(bed: &Bed, sizes: &Sizes) -> anyhow::Result<Measured> {
    measure(bed, sizes, sizes.chains, true).await
}

/// Runs `flows` chains (at once when `loaded`, else one at a time) after a
/// warm-up, then reads every hop's lag from the rows.
async fn measure(bed: &Bed, sizes: &Sizes, flows: u32, loaded: bool) -> anyhow::Result<Measured> {
    warm_up(bed, sizes).await?;
    let pool = start_pool(bed, sizes);
    let result = async {
        one_at_a_time(bed, &pool, sizes, WARM_UP_FLOWS).await?;
        let (before, started) = (bed.engine.stats(), Instant::now());
        let created = if loaded {
            let target = pool.tally.completed() + nodes(sizes, flows);
            let created =
                create_many(&*bed.backend, flows, || spec(&bed.lane, sizes.chain_length)).await?;
            pool.tally.wait_for(target, STALL).await?;
            created
        } else {
            one_at_a_time(bed, &pool, sizes, flows).await?
        };
        let elapsed = started.elapsed();
        let after = settled(bed, &before, sizes, flows).await;
        let mut measured = Measured::default();
        let per_sec_of = |n: u64| per_sec(n, elapsed);
        measured.figure("flows_per_sec", "flows/s", per_sec_of(flows.into()), None);
        measured.figure(
            "executions_per_sec",
            "jobs/s",
            per_sec_of(nodes(sizes, flows)),
            Some(if loaded { Batched } else { Single }),
        );
        lag_figures(&mut measured, &before, &after);
        measured.dist(
            "promotion_lag_rows",
            "parent finished_at → child ready_at, every hop (rows, backend clock, ms resolution)",
            Dist::Hdr(hop_lags(bed, &created, sizes.chain_length).await?),
        );
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
async fn one_at_a_time(
    bed: &Bed,
    pool: &Pool,
    sizes: &Sizes,
    flows: u32,
) -> anyhow::Result<Vec<FlowCreated>> {
    let mut created = Vec::with_capacity(flows as usize);
    for _ in 0..flows {
        let target = pool.tally.completed() + u64::from(sizes.chain_length);
        let flow = bed
            .backend
            .create_flow(spec(&bed.lane, sizes.chain_length))
            .await
            .context("creating a chain")?;
        created.push(flow);
        pool.tally.wait_for(target, STALL).await?;
    }
    Ok(created)
}

/// Every hop's lag, `a{i}.ready_at - a{i-1}.finished_at`, read back once
/// the flows are done. Unlike the engine's histogram it sees every
/// promotion, whichever service made it.
async fn hop_lags(bed: &Bed, flows: &[FlowCreated], length: u32) -> anyhow::Result<Latencies> {
    let ids = flows.iter().flat_map(|f| {
        (0..length).filter_map(move |i| f.nodes.get(&format!("a{i}")).map(|id| (i, *id)))
    });
    let mut reads = futures::stream::iter(ids)
        .map(|(i, id)| async move { bed.backend.get_execution(id).await.map(|e| (i, e)) })
        .buffered(READS_IN_FLIGHT);
    let mut lags = Latencies::new()?;
    let mut parent_finished = None;
    while let Some(read) = reads.next().await {
        let (i, exec) = read.context("reading a chain node")?;
        if i > 0 {
            let finished = parent_finished
                .with_context(|| format!("the parent of {} has no finish time", exec.id))?;
            lags.record_ms(exec.ready_at - finished);
        }
        parent_finished = exec.finished_at;
    }
    Ok(lags)
}

/// Creates `flows` flows from `make`, a few calls in flight.
pub async fn create_many(
    backend: &dyn FlowOps,
    flows: u32,
    make: impl Fn() -> FlowSpec,
) -> anyhow::Result<Vec<FlowCreated>> {
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
/// `before` is counted (in the lag histogram, or by the reconciler's
/// blocked-node scan, which records no lag). The listener records a lag just
/// after its cascade returns, which can trail the last node's completion by
/// a hair; after a second the snapshot is taken as is.
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
        let seen = now.promotion_lag.count - before.promotion_lag.count + now.blocked_reconciled
            - before.blocked_reconciled;
        if seen >= promotions || Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The engine's promotion lag over the window, and how many promotions
/// the reconciler (not the push path) made: by cascading an outbox entry
/// the stream had not delivered in time, or by deciding a blocked node whose
/// parents were all terminal before their cascades ran (those record no lag).
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
    measured.figure(
        "reconciled_blocked_nodes",
        "count",
        after
            .blocked_reconciled
            .saturating_sub(before.blocked_reconciled) as f64,
        None,
    );
    measured.dist(
        "promotion_lag",
        "parent committed → child claimable (engine histogram, backend clock)",
        Dist::Engine(lag_between(&before.promotion_lag, &after.promotion_lag)),
    );
}
