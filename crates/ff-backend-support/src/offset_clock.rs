//! [`OffsetClock`]: the process clock corrected to a server's, for
//! processes sharing one server.
//!
//! Every stored time must come from one clock, or a process whose clock
//! runs fast would expire the others' leases early. Asking the server for
//! its time in every write would cost a round trip per transition, so the
//! clock measures its offset from the server's at start and again every
//! [`RESYNC`], and reads the process clock plus that offset. The error is
//! half a round trip.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ff_core::{Clock, EngineError, Millis, SystemClock};

/// How often the offset is measured again.
pub const RESYNC: Duration = Duration::from_secs(30);

/// The process clock plus the last measured offset to a server's clock.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: AtomicI64,
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> Millis {
        SystemClock.now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }
}

impl OffsetClock {
    /// Measures the offset with `server_now` (the server's time in epoch
    /// ms) and keeps it fresh, in a task, while the clock is in use.
    pub async fn start<F, Fut>(server_now: F) -> Result<Arc<Self>, EngineError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Millis, EngineError>> + Send + 'static,
    {
        let clock = Arc::new(Self::default());
        clock.sync(&server_now).await?;
        tokio::spawn(resync(Arc::downgrade(&clock), server_now));
        Ok(clock)
    }

    async fn sync<F, Fut>(&self, server_now: &F) -> Result<(), EngineError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Millis, EngineError>>,
    {
        let before = SystemClock.now_ms();
        let server = server_now().await?;
        let after = SystemClock.now_ms();
        let local = before + (after - before) / 2;
        self.offset_ms.store(server - local, Ordering::Relaxed);
        Ok(())
    }
}

async fn resync<F, Fut>(clock: Weak<OffsetClock>, server_now: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Millis, EngineError>>,
{
    loop {
        tokio::time::sleep(RESYNC).await;
        let Some(clock) = clock.upgrade() else {
            return;
        };
        if let Err(error) = clock.sync(&server_now).await {
            tracing::debug!(%error, "could not read the server's clock; keeping the last offset");
        }
    }
}
