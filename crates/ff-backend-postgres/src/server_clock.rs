//! The server's clock, for processes sharing one database.
//!
//! Every stored time must come from one clock, or a process whose clock
//! runs fast would expire the others' leases early. Asking Postgres for
//! `clock_timestamp()` in every statement would cost a round trip per
//! transition, so the backend measures its offset from the server's clock
//! at connect and again every [`RESYNC`], and reads the process clock plus
//! that offset. The error is half a round trip, well under a millisecond on
//! a local network.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::PgPool;

use ff_core::{Clock, EngineError, Millis, SystemClock};

use crate::PgResult;

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
    pub(crate) async fn start(pool: &PgPool) -> Result<Arc<Self>, EngineError> {
        let clock = Arc::new(Self::default());
        clock.sync(pool).await?;
        let (weak, pool) = (Arc::downgrade(&clock), pool.clone());
        tokio::spawn(resync(weak, pool));
        Ok(clock)
    }

    async fn sync(&self, pool: &PgPool) -> Result<(), EngineError> {
        let before = SystemClock.now_ms();
        let server: i64 =
            sqlx::query_scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
                .fetch_one(pool)
                .await
                .db()?;
        let after = SystemClock.now_ms();
        let local = before + (after - before) / 2;
        self.offset_ms.store(server - local, Ordering::Relaxed);
        Ok(())
    }
}

async fn resync(clock: Weak<ServerClock>, pool: PgPool) {
    loop {
        tokio::time::sleep(RESYNC).await;
        let Some(clock) = clock.upgrade() else {
            return;
        };
        if let Err(error) = clock.sync(&pool).await {
            tracing::debug!(%error, "could not measure the server clock; keeping the last offset");
        }
    }
}
