//! Waiting claims for the in-process backends of this crate.

use std::time::Duration;

use ff_core::{ClaimRequest, Claimed, EngineError, LeaseOps};
use tokio::sync::watch;
use tokio::time::Instant;

/// Longest single wait before claiming again: a safety net for work that
/// becomes due by time alone, never a tight poll.
const RECHECK: Duration = Duration::from_secs(1);

/// Claims; when nothing is claimable, waits for the work signal (subscribed
/// before the first claim, so no wake-up is missed) or the timeout.
pub async fn claim_wait<B: LeaseOps + ?Sized>(
    backend: &B,
    mut work: watch::Receiver<u64>,
    req: &ClaimRequest,
    timeout: Duration,
) -> Result<Vec<Claimed>, EngineError> {
    let deadline = Instant::now() + timeout;
    loop {
        work.borrow_and_update();
        let claimed = backend.claim(req).await?;
        let now = Instant::now();
        if !claimed.is_empty() || now >= deadline {
            return Ok(claimed);
        }
        let wait = (deadline - now).min(RECHECK);
        // A closed channel means the backend is gone; the next claim says so.
        let _ = tokio::time::timeout(wait, work.changed()).await;
    }
}
