//! [`WorkSignal`], which a backend bumps whenever something may have become
//! claimable, and [`claim_wait`], the waiting claim every backend answers
//! `LeaseOps::claim_wait` with: woken by the signal, never by a tight poll.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use ff_core::{Claimed, EngineError};

/// "Work may be claimable now"; clones share one signal.
#[derive(Clone, Debug)]
pub struct WorkSignal(Arc<watch::Sender<u64>>);

impl Default for WorkSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkSignal {
    pub fn new() -> Self {
        Self(Arc::new(watch::channel(0).0))
    }

    /// Wakes every waiting claim.
    pub fn bump(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// Claims with `claim` until it answers something or `timeout` passes,
/// trying again whenever `signal` is bumped and at least every `recheck`
/// (work that became due by the clock alone wakes nobody).
pub async fn claim_wait<F, Fut>(
    signal: &WorkSignal,
    timeout: Duration,
    recheck: Duration,
    mut claim: F,
) -> Result<Vec<Claimed>, EngineError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Vec<Claimed>, EngineError>>,
{
    let deadline = Instant::now() + timeout;
    // Subscribed before the first claim: a commit landing between an empty
    // claim and the wait still wakes us.
    let mut woken = signal.subscribe();
    loop {
        woken.borrow_and_update();
        let claimed = claim().await?;
        let now = Instant::now();
        if !claimed.is_empty() || now >= deadline {
            return Ok(claimed);
        }
        let wait = (deadline - now).min(recheck);
        if let Ok(Err(_)) = tokio::time::timeout(wait, woken.changed()).await {
            // The backend is gone; nothing will ever wake us.
            return Ok(claimed);
        }
    }
}
