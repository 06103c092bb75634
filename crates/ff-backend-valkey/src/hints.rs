//! Which partitions may hold claimable work, per lane: so a claim on an
//! empty lane costs no round trip per partition. A partition is asked
//! until a claim finds nothing there; it is asked again once its earliest
//! scheduled entry is due, when this process writes work there, when a
//! wake-up on the work channel names it, and in any case after
//! [`RECHECK_MS`], which bounds what a lost wake-up can hide.

use std::collections::HashMap;
use std::sync::Mutex;

use ff_core::Millis;

/// The longest a partition is skipped on a hint alone.
pub(crate) const RECHECK_MS: Millis = 1_000;

#[derive(Debug, Clone, Copy, Default)]
struct Hint {
    /// Nothing is claimable in the partition before this time.
    empty_until: Millis,
    /// Bumped by every wake-up, so a claim that started before a wake-up
    /// cannot mark the partition empty after it.
    generation: u64,
}

#[derive(Debug)]
pub(crate) struct Hints {
    partitions: u32,
    lanes: Mutex<HashMap<(String, String), Vec<Hint>>>,
}

/// A claim's view of the hints when it started: per partition, whether to
/// ask it and the generations of its lanes.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) ask: Vec<bool>,
    generations: Vec<Vec<u64>>,
}

impl Hints {
    pub(crate) fn new(partitions: u32) -> Self {
        Self {
            partitions,
            lanes: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Vec<Hint>>> {
        self.lanes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn snapshot(&self, namespace: &str, lanes: &[String], now: Millis) -> Snapshot {
        let n = self.partitions as usize;
        let mut map = self.lock();
        let mut ask = vec![false; n];
        let mut generations = vec![Vec::with_capacity(lanes.len()); n];
        for lane in lanes {
            let hints = map
                .entry((namespace.to_owned(), lane.clone()))
                .or_insert_with(|| vec![Hint::default(); n]);
            for (p, hint) in hints.iter().enumerate() {
                ask[p] |= hint.empty_until <= now;
                generations[p].push(hint.generation);
            }
        }
        Snapshot { ask, generations }
    }

    /// A claim at `now` found nothing claimable in `p` before `until`.
    pub(crate) fn found_empty(
        &self,
        namespace: &str,
        lanes: &[String],
        p: u32,
        snapshot: &Snapshot,
        now: Millis,
        until: Millis,
    ) {
        let until = until.min(now.saturating_add(RECHECK_MS));
        let mut map = self.lock();
        for (lane, seen) in lanes.iter().zip(&snapshot.generations[p as usize]) {
            if let Some(hint) = map
                .get_mut(&(namespace.to_owned(), lane.clone()))
                .and_then(|h| h.get_mut(p as usize))
            {
                if hint.generation == *seen {
                    hint.empty_until = until;
                }
            }
        }
    }

    /// Work was written to `lane` in `p`.
    pub(crate) fn wake(&self, namespace: &str, lane: &str, p: u32) {
        let mut map = self.lock();
        if let Some(hint) = map
            .get_mut(&(namespace.to_owned(), lane.to_owned()))
            .and_then(|h| h.get_mut(p as usize))
        {
            hint.empty_until = 0;
            hint.generation += 1;
        }
    }

    /// Forgets every hint: every partition is asked again.
    pub(crate) fn forget(&self) {
        let mut map = self.lock();
        for hints in map.values_mut() {
            for hint in hints {
                hint.empty_until = 0;
                hint.generation += 1;
            }
        }
    }
}
