//! Cascading completions, as the completion listener and the dependency
//! reconciler run them: call the backend, record what each cascade did.
//!
//! The backend claims the outbox entry and applies its edges in one atomic
//! step, so running the same payload twice — the stream and the reconciler,
//! or two engines — is harmless: the second answers `dispatched: false`.

use ff_core::cascade::CascadeReport;
use ff_core::{CompletionPayload, EngineError, FlowOps};
use tracing::Instrument;

use crate::stats::EngineStats;

/// What became of one cascade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cascaded {
    /// This call dispatched the entry.
    Dispatched,
    /// The entry had already been dispatched; nothing changed.
    Duplicate,
    /// The call failed; the entry stays undispatched for the reconciler.
    Failed,
}

/// Cascades `payload`, recording its stats. Never fails: an error is logged
/// and counted, and the durable outbox entry waits for the reconciler.
pub(crate) async fn cascade(
    flows: &dyn FlowOps,
    stats: &EngineStats,
    payload: &CompletionPayload,
) -> Cascaded {
    let span = tracing::trace_span!(
        "cascade",
        execution_id = %payload.execution_id,
        outcome = %payload.outcome,
        seq = payload.seq,
    );
    let result = flows.cascade_completion(payload).instrument(span).await;
    record(stats, payload, result)
}

/// Cascades `payloads` in one `cascade_completions` call, recording each
/// one's stats as [`cascade`] does. A call that fails as a whole fails every
/// payload in it.
pub(crate) async fn cascade_all(
    flows: &dyn FlowOps,
    stats: &EngineStats,
    payloads: &[CompletionPayload],
) -> Vec<Cascaded> {
    let span = tracing::trace_span!("cascades", payloads = payloads.len());
    match flows.cascade_completions(payloads).instrument(span).await {
        Ok(results) => {
            let mut results = results.into_iter();
            payloads
                .iter()
                .map(|payload| {
                    let result = results.next().unwrap_or_else(|| {
                        Err(EngineError::backend("the batch answered fewer payloads"))
                    });
                    record(stats, payload, result)
                })
                .collect()
        }
        Err(error) => {
            tracing::warn!(payloads = payloads.len(), %error, "cascades failed; left to the reconciler");
            payloads
                .iter()
                .map(|_| {
                    stats.add_cascade_error();
                    Cascaded::Failed
                })
                .collect()
        }
    }
}

/// Records what one cascade did.
fn record(
    stats: &EngineStats,
    payload: &CompletionPayload,
    result: Result<CascadeReport, EngineError>,
) -> Cascaded {
    match result {
        Ok(report) if report.dispatched => {
            stats.add_cascade(payload, &report);
            // A skipped child is not cascaded here: skipping wrote its own
            // outbox entry, which arrives as a payload of its own.
            if !report.promoted.is_empty() || !report.skipped.is_empty() {
                tracing::trace!(
                    execution_id = %payload.execution_id,
                    promoted = report.promoted.len(),
                    skipped = report.skipped.len(),
                    cancelled = report.cancelled.len(),
                    "cascaded"
                );
            }
            Cascaded::Dispatched
        }
        Ok(_) => Cascaded::Duplicate,
        Err(error) => {
            stats.add_cascade_error();
            tracing::warn!(
                execution_id = %payload.execution_id,
                seq = payload.seq,
                %error,
                "cascade failed; left to the reconciler"
            );
            Cascaded::Failed
        }
    }
}
