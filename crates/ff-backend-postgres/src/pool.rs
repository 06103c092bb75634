//! Connection pools: every session on the deployment's schema, committing
//! synchronously, with bounded waits for a connection.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use ff_backend_support::OffsetClock;
use ff_core::{EngineError, SharedClock};

use crate::{PgResult, DEFAULT_ACQUIRE_TIMEOUT};

/// A pool whose sessions use `schema` and commit synchronously (the server
/// default, stated so a changed default cannot lose acknowledged writes).
pub async fn pool(url: &str, schema: &str, max_connections: u32) -> Result<PgPool, EngineError> {
    open_pool(url, schema, max_connections, DEFAULT_ACQUIRE_TIMEOUT).await
}

/// [`pool`] whose operations wait at most `acquire_timeout` for a
/// connection.
pub(crate) async fn open_pool(
    url: &str,
    schema: &str,
    max_connections: u32,
    acquire_timeout: std::time::Duration,
) -> Result<PgPool, EngineError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| EngineError::invalid("database_url", e.to_string()))?
        .application_name("flowfabric")
        .options([("search_path", schema), ("synchronous_commit", "on")])
        // Backend calls are traced by `ff_engine::Instrumented`; the
        // driver's per-statement and slow-statement logs (a deliberate
        // VACUUM is slow) would only repeat them.
        .disable_statement_logging();
    // One connection first, so an unreachable server or a wrong database
    // is reported as the server said it, at once, not as a pool timeout.
    // Bounded too: a host that drops packets would otherwise hold start-up
    // for the system's TCP timeout.
    let first = tokio::time::timeout(acquire_timeout, options.connect())
        .await
        .map_err(|_| EngineError::Unavailable {
            message: format!("cannot connect to Postgres: no answer within {acquire_timeout:?}"),
        })?
        .map_err(|err| EngineError::Unavailable {
            message: format!("cannot connect to Postgres: {err}"),
        })?;
    first.close().await.db()?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .connect_with(options)
        .await
        .db()
}

/// The server's clock, read through `pool`: every process on one database
/// agrees on `now`.
pub(crate) async fn server_clock(pool: &PgPool) -> Result<SharedClock, EngineError> {
    let pool = pool.clone();
    let clock = OffsetClock::start(move || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
                .fetch_one(&pool)
                .await
                .db()
        }
    })
    .await?;
    Ok(clock)
}
