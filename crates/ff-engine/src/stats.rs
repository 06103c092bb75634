//! Counters the services bump as they work, readable while the engine runs.
//! Plain relaxed atomics: each counter is independent and only ever grows.

use std::sync::atomic::{AtomicU64, Ordering};

use ff_core::cascade::CascadeReport;
use ff_core::{CompletionPayload, Outcome};

use crate::lag::{LagHistogram, LagSnapshot};

/// Live counters shared by every service of one engine.
#[derive(Debug, Default)]
pub struct EngineStats {
    leases_expired: AtomicU64,
    scheduled_promoted: AtomicU64,
    deadlines_expired: AtomicU64,
    suspensions_timed_out: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
    skipped: AtomicU64,
    service_errors: AtomicU64,
    cascades: AtomicU64,
    cascade_promoted: AtomicU64,
    cascade_skipped: AtomicU64,
    cascade_cancelled: AtomicU64,
    cascade_errors: AtomicU64,
    reconciled: AtomicU64,
    blocked_reconciled: AtomicU64,
    outbox_trimmed: AtomicU64,
    promotion_lag: LagHistogram,
}

/// A point-in-time copy of [`EngineStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Executions whose lease or attempt timeout the lease-expiry scan applied.
    pub leases_expired: u64,
    /// Scheduled executions made ready.
    pub scheduled_promoted: u64,
    /// Executions failed by the deadline scan.
    pub deadlines_expired: u64,
    /// Suspensions whose timeout policy the timeout scan applied.
    pub suspensions_timed_out: u64,
    /// Completion events heard, by outcome.
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub skipped: u64,
    /// Failed backend calls, each followed by a backoff.
    pub service_errors: u64,
    /// Outbox entries dispatched by a cascade, from the stream or the
    /// reconciler (duplicates, which change nothing, are not counted).
    pub cascades: u64,
    /// Flow nodes those cascades made ready (or scheduled).
    pub cascade_promoted: u64,
    /// Flow nodes those cascades skipped (each then cascades on its own).
    pub cascade_skipped: u64,
    /// Flow nodes those cascades cancelled (fail-fast, cancelled losers).
    pub cascade_cancelled: u64,
    /// Cascades that failed; their entries stay undispatched for the reconciler.
    pub cascade_errors: u64,
    /// Of `cascades`, those the reconciler dispatched: completions the stream
    /// missed, or had not delivered within the grace period.
    pub reconciled: u64,
    /// Blocked nodes the reconciler decided from their parents' outcomes.
    pub blocked_reconciled: u64,
    /// Dispatched outbox entries deleted by the trim.
    pub outbox_trimmed: u64,
    /// Parent commit → children claimable, for cascades that promoted.
    pub promotion_lag: LagSnapshot,
}

impl StatsSnapshot {
    /// Completion events heard, all outcomes.
    pub fn completions(&self) -> u64 {
        self.completed + self.failed + self.cancelled + self.skipped
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl EngineStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            leases_expired: get(&self.leases_expired),
            scheduled_promoted: get(&self.scheduled_promoted),
            deadlines_expired: get(&self.deadlines_expired),
            suspensions_timed_out: get(&self.suspensions_timed_out),
            completed: get(&self.completed),
            failed: get(&self.failed),
            cancelled: get(&self.cancelled),
            skipped: get(&self.skipped),
            service_errors: get(&self.service_errors),
            cascades: get(&self.cascades),
            cascade_promoted: get(&self.cascade_promoted),
            cascade_skipped: get(&self.cascade_skipped),
            cascade_cancelled: get(&self.cascade_cancelled),
            cascade_errors: get(&self.cascade_errors),
            reconciled: get(&self.reconciled),
            blocked_reconciled: get(&self.blocked_reconciled),
            outbox_trimmed: get(&self.outbox_trimmed),
            promotion_lag: self.promotion_lag.snapshot(),
        }
    }

    pub(crate) fn add_leases_expired(&self, n: u32) {
        add(&self.leases_expired, n.into());
    }

    pub(crate) fn add_scheduled_promoted(&self, n: u32) {
        add(&self.scheduled_promoted, n.into());
    }

    pub(crate) fn add_deadlines_expired(&self, n: u32) {
        add(&self.deadlines_expired, n.into());
    }

    pub(crate) fn add_suspensions_timed_out(&self, n: u32) {
        add(&self.suspensions_timed_out, n.into());
    }

    pub(crate) fn add_completion(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Completed => &self.completed,
            Outcome::Failed => &self.failed,
            Outcome::Cancelled => &self.cancelled,
            Outcome::Skipped => &self.skipped,
        };
        add(counter, 1);
    }

    pub(crate) fn add_service_error(&self) {
        add(&self.service_errors, 1);
    }

    /// Records a dispatched cascade of `payload` and, when it promoted
    /// anything, its promotion lag.
    pub(crate) fn add_cascade(&self, payload: &CompletionPayload, report: &CascadeReport) {
        add(&self.cascades, 1);
        add(&self.cascade_promoted, report.promoted.len() as u64);
        add(&self.cascade_skipped, report.skipped.len() as u64);
        add(&self.cascade_cancelled, report.cancelled.len() as u64);
        if !report.promoted.is_empty() {
            // Both stamps come from the backend's clock; a clock stepped
            // backwards between them reads as no lag rather than wrapping.
            let lag = report.cascaded_at.saturating_sub(payload.committed_at);
            self.promotion_lag.observe(u64::try_from(lag).unwrap_or(0));
        }
    }

    pub(crate) fn add_cascade_error(&self) {
        add(&self.cascade_errors, 1);
    }

    pub(crate) fn add_reconciled(&self) {
        add(&self.reconciled, 1);
    }

    pub(crate) fn add_blocked_reconciled(&self, n: u32) {
        add(&self.blocked_reconciled, n.into());
    }

    pub(crate) fn add_outbox_trimmed(&self, n: u32) {
        add(&self.outbox_trimmed, n.into());
    }
}
