//! The server's clock, for processes sharing one server.
//!
//! Every stored time must come from one clock, or a process whose clock
//! runs fast would expire the others' leases early. The rules run in Rust
//! before the write, so the backend measures its offset from the server's
//! `TIME` at connect and again every [`RESYNC`], and reads the process
//! clock plus that offset; the error is half a round trip.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ff_core::{Clock, EngineError, Millis, SystemClock};

use crate::conn::Conn;

/// How often the offset is measured again.
const RESYNC: Duration = Duration::from_secs(30);

/// The process clock corrected to the server's.
#[derive(Debug, Default)]
pub(crate) struct ServerClock {
    offset_ms: AtomicI64,
}

impl Clock for ServerClock {
    fn now_ms(&self) -> Millis {
        SystemClock.now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }
}

impl ServerClock {
    /// Measures the offset once and keeps it fresh while the clock is used.
    pub(crate) async fn start(conn: &Conn) -> Result<Arc<Self>, EngineError> {
        let clock = Arc::new(Self::default());
        clock.sync(conn).await?;
        let (weak, conn) = (Arc::downgrade(&clock), conn.clone());
        tokio::spawn(resync(weak, conn));
        Ok(clock)
    }

    async fn sync(&self, conn: &Conn) -> Result<(), EngineError> {
        let before = SystemClock.now_ms();
        let (secs, micros): (i64, i64) = conn.query(&redis::cmd("TIME")).await?;
        let after = SystemClock.now_ms();
        let server = secs * 1000 + micros / 1000;
        let local = before + (after - before) / 2;
        self.offset_ms.store(server - local, Ordering::Relaxed);
        Ok(())
    }
}

async fn resync(clock: Weak<ServerClock>, conn: Conn) {
    loop {
        tokio::time::sleep(RESYNC).await;
        let Some(clock) = clock.upgrade() else {
            return;
        };
        if let Err(error) = clock.sync(&conn).await {
            tracing::debug!(%error, "could not read the server's TIME; keeping the last offset");
        }
    }
}
