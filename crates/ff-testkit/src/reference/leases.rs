//! Claims for the reference backend.

use std::time::Duration;

use ff_core::{lease, ClaimRequest, Claimed, LeaseToken};

use super::ReferenceBackend;

/// Longest single wait before claiming again: a safety net for work that
/// becomes due by time alone, never a tight poll.
pub(super) const RECHECK: Duration = Duration::from_secs(1);

impl ReferenceBackend {
    /// Claims up to `req.n` in claim order, through `ff_core`'s claim rule.
    pub(super) fn claim_now(&self, req: &ClaimRequest) -> Vec<Claimed> {
        let now = self.now();
        self.with_store(|store, _| {
            let mut candidates: Vec<_> = store
                .executions
                .values()
                .filter(|e| {
                    e.namespace == req.namespace
                        && req.lanes.contains(&e.lane)
                        && e.is_claimable(now)
                        && e.capabilities_met_by(&req.capabilities)
                })
                .map(|e| (e.order_key(), e.id))
                .collect();
            candidates.sort();
            candidates
                .into_iter()
                .take(req.n as usize)
                .filter_map(|(_, id)| {
                    let exec = store.executions.get_mut(&id)?;
                    Some(lease::claim(
                        exec,
                        &req.worker_id,
                        LeaseToken::random(),
                        now,
                    ))
                })
                .collect()
        })
    }
}
