//! `latency`: how long a submitted execution waits before a worker has it,
//! with workers idle in `claim_wait` and submissions arriving at a fixed
//! rate (open loop: a slow submit does not delay the next one).
//!
//! One sample is the submit call's acknowledgement → the claim call that
//! returned the execution, both on this process's monotonic clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use ff_core::{EngineBackend, ExecutionId};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::{noop, Measured, Sizes, STALL};
use crate::harness::Bed;
use crate::stats::{per_sec, Dist, Latencies};
use crate::worker::{ClaimObserver, Pool};

/// Submitting at the rate before measuring, results discarded.
const WARM_UP: Duration = Duration::from_millis(500);

type Stamps = Arc<Mutex<HashMap<ExecutionId, Instant>>>;

pub async fn run(bed: &Bed, sizes: &Sizes) -> anyhow::Result<Measured> {
    let claimed: Stamps = Arc::default();
    let stamps = claimed.clone();
    let observer: ClaimObserver = Arc::new(move |jobs, _called, answered| {
        let mut stamps = stamps.lock().unwrap_or_else(PoisonError::into_inner);
        for job in jobs {
            stamps.insert(job.handle.execution_id, answered);
        }
    });
    let pool = Pool::start(
        bed.backend.clone(),
        &bed.lane,
        sizes.workers,
        sizes.claim_batch,
        Some(observer),
    );
    let result = measure(bed, sizes, &pool, &claimed).await;
    pool.stop().await;
    result
}

async fn measure(
    bed: &Bed,
    sizes: &Sizes,
    pool: &Pool,
    claimed: &Stamps,
) -> anyhow::Result<Measured> {
    let rate = sizes.rate.max(1);
    let warm = submit_at_rate(&bed.backend, &bed.lane, rate, WARM_UP).await?;
    pool.tally
        .wait_for(warm.len() as u64, STALL)
        .await
        .context("warming up")?;

    let window = Duration::from_secs(u64::from(sizes.duration_secs.max(1)));
    let started = Instant::now();
    let acks = submit_at_rate(&bed.backend, &bed.lane, rate, window).await?;
    let submitting = started.elapsed();
    pool.tally
        .wait_for((warm.len() + acks.len()) as u64, STALL)
        .await
        .context("waiting for the last claims")?;

    let claimed = claimed.lock().unwrap_or_else(PoisonError::into_inner);
    let mut latencies = Latencies::new()?;
    for (id, acked) in &acks {
        let started = claimed
            .get(id)
            .with_context(|| format!("execution {id} completed but its claim was not seen"))?;
        // A claim answered a hair before the submitter's task ran counts as 0.
        latencies.record(started.saturating_duration_since(*acked));
    }
    let mut measured = Measured::default();
    measured.figure(
        "submitted_per_sec",
        "jobs/s",
        per_sec(acks.len() as u64, submitting),
        None,
    );
    measured.dist(
        "enqueue_to_start",
        "submit acknowledged → claim returned it",
        Dist::Hdr(latencies),
    );
    Ok(measured)
}

/// Submits one execution every `1 / rate` s for `window`, each in its own
/// task; returns every id with the instant its submit was acknowledged.
async fn submit_at_rate(
    backend: &Arc<dyn EngineBackend>,
    lane: &str,
    rate: u32,
    window: Duration,
) -> anyhow::Result<Vec<(ExecutionId, Instant)>> {
    let total = (f64::from(rate) * window.as_secs_f64()).round() as u64;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut submits = JoinSet::new();
    for i in 0..total {
        ticks.tick().await;
        let backend: Arc<dyn EngineBackend> = backend.clone();
        let request = noop(lane, i);
        submits.spawn(async move {
            let submitted = backend.submit(request).await;
            submitted.map(|s| (s.id, Instant::now()))
        });
    }
    let mut acks = Vec::with_capacity(total as usize);
    while let Some(joined) = submits.join_next().await {
        acks.push(joined.context("a submit task failed")??);
    }
    Ok(acks)
}
