//! How many candidates claims passed over, by the limit that held them:
//! a backend's running tally, read by the server's metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::gate::Held;

/// A backend's tally of passed-over candidates.
#[derive(Debug, Default)]
pub struct PassedOver {
    concurrency: AtomicU64,
    rate: AtomicU64,
    budget: AtomicU64,
}

/// [`PassedOver`] as read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PassedOverCounts {
    pub concurrency: u64,
    pub rate: u64,
    pub budget: u64,
}

impl PassedOver {
    /// Counts the holds one claim passed over.
    pub fn add(&self, held: &[Held]) {
        let mut counts = PassedOverCounts::default();
        for h in held {
            match h {
                Held::Concurrency { .. } => counts.concurrency += 1,
                Held::Rate { .. } => counts.rate += 1,
                Held::Budget { .. } => counts.budget += 1,
            }
        }
        self.add_counts(counts);
    }

    pub fn add_counts(&self, counts: PassedOverCounts) {
        for (counter, n) in [
            (&self.concurrency, counts.concurrency),
            (&self.rate, counts.rate),
            (&self.budget, counts.budget),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    pub fn snapshot(&self) -> PassedOverCounts {
        PassedOverCounts {
            concurrency: self.concurrency.load(Ordering::Relaxed),
            rate: self.rate.load(Ordering::Relaxed),
            budget: self.budget.load(Ordering::Relaxed),
        }
    }
}
