//! One cascade of one completion, as the completion listener and the
//! dependency reconciler both run it: call the backend, record what it did.
//!
//! The backend claims the outbox entry and applies its edges in one atomic
//! step, so running the same payload twice — the stream and the reconciler,
//! or two engines — is harmless: the second answers `dispatched: false`.

use ff_core::{CompletionPayload, FlowOps};
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
    match flows.cascade_completion(payload).instrument(span).await {
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
