//! `fanout`: flows of one root, `width` children and one `all_of` sink,
//! created at once. Besides flows per second, how long a whole fan-out and
//! fan-in takes: the root's completion → the sink becoming claimable, read
//! from the two executions' stamps (backend clock) once the flows are done.

use std::time::Instant;

use anyhow::Context;
use ff_core::flow::{EdgeSpec, FlowSpec, Join, NodeSpec};

use super::chain::create_many;
use super::{noop, warm_up, Measured, Sizes, STALL};
use crate::ceiling::CeilingKind::Batched;
use crate::harness::Bed;
use crate::stats::{per_sec, Dist, Latencies};
use crate::worker::Pool;

const ROOT: &str = "root";
const SINK: &str = "sink";

/// `root → c0..c{width-1} → sink`, the sink waiting for every child.
pub fn spec(lane: &str, width: u32) -> FlowSpec {
    let child = |i: u32| format!("c{i}");
    let mut nodes = vec![NodeSpec::new(ROOT, noop(lane, 0))];
    nodes.extend((0..width).map(|i| NodeSpec::new(child(i), noop(lane, u64::from(i) + 1))));
    nodes.push(NodeSpec::new(SINK, noop(lane, u64::from(width) + 1)).join(Join::AllOf));
    let edges = (0..width)
        .flat_map(|i| [EdgeSpec::new(ROOT, child(i)), EdgeSpec::new(child(i), SINK)])
        .collect();
    FlowSpec::new(nodes, edges)
}

pub async fn run(bed: &Bed, sizes: &Sizes) -> anyhow::Result<Measured> {
    warm_up(bed, sizes).await?;
    let pool = Pool::start(
        bed.backend.clone(),
        &bed.lane,
        sizes.workers,
        sizes.claim_batch,
        None,
    );
    let result = measure(bed, sizes, &pool).await;
    pool.stop().await;
    result
}

async fn measure(bed: &Bed, sizes: &Sizes, pool: &Pool) -> anyhow::Result<Measured> {
    let per_flow = u64::from(sizes.fanout_width) + 2;
    // One flow through first: the warm-up of the flow path.
    let target = pool.tally.completed() + per_flow;
    create_many(&*bed.backend, 1, || spec(&bed.lane, sizes.fanout_width)).await?;
    pool.tally.wait_for(target, STALL).await?;

    let started = Instant::now();
    let target = pool.tally.completed() + per_flow * u64::from(sizes.flows);
    let flows = create_many(&*bed.backend, sizes.flows, || {
        spec(&bed.lane, sizes.fanout_width)
    })
    .await?;
    pool.tally.wait_for(target, STALL).await?;
    let elapsed = started.elapsed();

    let mut fan_in = Latencies::new()?;
    for flow in &flows {
        let (Some(root), Some(sink)) = (flow.nodes.get(ROOT), flow.nodes.get(SINK)) else {
            anyhow::bail!("flow {} lacks its root or sink", flow.flow_id);
        };
        let root = bed
            .backend
            .get_execution(*root)
            .await
            .context("reading a root")?;
        let sink = bed
            .backend
            .get_execution(*sink)
            .await
            .context("reading a sink")?;
        let finished = root
            .finished_at
            .with_context(|| format!("root {} has no finish time", root.id))?;
        fan_in.record_ms(sink.ready_at - finished);
    }

    let flows = u64::from(sizes.flows);
    let mut measured = Measured::default();
    measured.figure("flows_per_sec", "flows/s", per_sec(flows, elapsed), None);
    measured.figure(
        "executions_per_sec",
        "jobs/s",
        per_sec(flows * per_flow, elapsed),
        Some(Batched),
    );
    measured.dist(
        "root_to_sink",
        "root completed → sink claimable (backend clock, ms resolution)",
        Dist::Hdr(fan_in),
    );
    Ok(measured)
}
