//! Claims for the reference backend.

use std::time::Duration;

use ff_core::{ClaimRequest, Claimed};

use super::ReferenceBackend;

/// Longest single wait before claiming again: a safety net for work that
/// becomes due by time alone, never a tight poll.
pub(super) const RECHECK: Duration = Duration::from_secs(1);

impl ReferenceBackend {
    /// Claims up to `req.n` in claim order, through `ff_core`'s claim rule.
    pub(super) fn claim_now(&self, req: &ClaimRequest) -> Vec<Claimed> {
        self.with_store(|store, _| store.claim(req, self.now(), &self.inner.passed_over))
    }
}
