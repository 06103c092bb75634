//! Counters the services bump as they work, readable while the engine runs.
//! Plain relaxed atomics: each counter is independent and only ever grows.

use std::sync::atomic::{AtomicU64, Ordering};

use ff_core::Outcome;

/// Live counters shared by every service of one engine.
#[derive(Debug, Default)]
pub struct EngineStats {
    leases_expired: AtomicU64,
    scheduled_promoted: AtomicU64,
    deadlines_expired: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
    skipped: AtomicU64,
    service_errors: AtomicU64,
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
    /// Completion events heard, by outcome.
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub skipped: u64,
    /// Failed backend calls, each followed by a backoff.
    pub service_errors: u64,
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
            completed: get(&self.completed),
            failed: get(&self.failed),
            cancelled: get(&self.cancelled),
            skipped: get(&self.skipped),
            service_errors: get(&self.service_errors),
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
}
