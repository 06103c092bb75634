//! Submitting the demo batch: chunks of the batch limit, a few in flight at
//! once so the writer can commit them together, each execution keyed
//! `demo-<i>` so a rerun on the same database finds the executions it
//! already submitted (`created: false`) instead of adding new ones.

use std::ops::Range;

use anyhow::Context;
use ff_core::{EngineBackend, ExecutionId, JsonText, RetryPolicy, SubmitRequest};
use ff_engine::shutdown::Signal;
use futures::StreamExt;

use super::{KIND, LANE};

/// The batch limit of `submit_batch`.
const CHUNK: u64 = 1000;
/// Chunks submitted concurrently.
const IN_FLIGHT: usize = 4;

/// Short backoffs keep the demo's retries quick: 50 ms, then 100 ms.
pub const DEMO_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    initial_backoff_ms: 50,
    max_backoff_ms: 200,
    jitter_percent: 20,
};

/// What submission found.
#[derive(Debug, Default)]
pub struct Submission {
    /// Every submitted id, in index order.
    pub ids: Vec<ExecutionId>,
    /// How many were new (the rest were found by their idempotency key).
    pub created: u64,
    /// Whether an interrupt stopped submission early.
    pub interrupted: bool,
}

/// Submits executions `0..count`, stopping early on `interrupt`.
pub async fn submit_all(
    backend: &dyn EngineBackend,
    count: u64,
    lease_ms: u64,
    interrupt: &Signal,
) -> anyhow::Result<Submission> {
    let chunks = (0..count.div_ceil(CHUNK)).map(|c| c * CHUNK..((c + 1) * CHUNK).min(count));
    let mut answers = futures::stream::iter(chunks)
        .map(|range| submit_chunk(backend, range, lease_ms))
        .buffered(IN_FLIGHT);
    let mut submission = Submission {
        ids: Vec::with_capacity(count as usize),
        ..Submission::default()
    };
    while let Some(answer) = answers.next().await {
        for submitted in answer? {
            submission.ids.push(submitted.id);
            submission.created += u64::from(submitted.created);
        }
        if interrupt.is_triggered() {
            submission.interrupted = true;
            break;
        }
    }
    Ok(submission)
}

async fn submit_chunk(
    backend: &dyn EngineBackend,
    range: Range<u64>,
    lease_ms: u64,
) -> anyhow::Result<Vec<ff_core::Submitted>> {
    let first = range.start;
    let requests = range
        .map(|i| {
            SubmitRequest::new(LANE, KIND, JsonText::unchecked(format!("{{\"i\":{i}}}")))
                .idempotency_key(format!("demo-{i}"))
                .retry(DEMO_RETRY)
                .lease_ms(lease_ms)
        })
        .collect();
    backend
        .submit_batch(requests)
        .await
        .with_context(|| format!("submitting the chunk starting at demo-{first}"))
}
