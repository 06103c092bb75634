//! FlowFabric's Postgres backend: the same model and rules as the embedded
//! SQLite backend, on a shared server, so several `ff` processes can serve
//! one workload.
//!
//! Entry points: [`PostgresBackend::connect`] with a [`PostgresConfig`], then
//! the `ff_core` traits ([`ff_core::EngineBackend`],
//! [`ff_core::CompletionBackend`]).
//!
//! # Layout
//! - `config`: [`PostgresConfig`].
//! - `migrations`: forward-only schema migrations (`migrations/*.sql`) under
//!   an advisory lock, and the `meta` checks.
//! - `rows`: the one mapping between `Execution` and its row.
//! - `store`: the versioned batch write every transition ends with.
//! - `completions`: the completion broadcast behind `subscribe_completions`.
//! - `listener`: the `LISTEN` connection that turns notifications into
//!   wake-ups and completion events.
//! - `single`, `dispatch`: the group commits of single-execution
//!   transitions and of solo completions' dispatch.
//! - `vacuum`: keeps the hot tables' indexes free of dead entries.
//! - `executions`, `leases`, `flows`, `maintenance`, `reads`: one file per
//!   `ff_core` trait.
//!
//! Every rule lives in `ff_core`: an operation reads the rows, calls the pure
//! function with the clock's `now`, and writes back what changed with a
//! version check, so a concurrent writer is detected instead of overwritten.
//! Claims and scans lock their rows with `FOR UPDATE SKIP LOCKED`; a flow's
//! operations lock the flow's row first, then its members.

pub mod config;
mod scratch;

mod completions;
mod dispatch;
mod executions;
mod flow_txn;
mod flows;
mod leases;
mod listener;
mod maintenance;
mod migrations;
mod queue;
mod reads;
mod rows;
mod single;
mod store;
mod vacuum;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::sync::mpsc;

use ff_backend_support::{OffsetClock, WorkSignal};

use ff_core::{EngineError, Limits, Millis, SharedClock};

pub use config::{PostgresConfig, DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_SCHEMA};
pub use migrations::drop_schema;
pub use scratch::ScratchSchema;

use completions::Completions;
use store::Saved;

/// The Postgres backend. Cheap to clone; clones share one pool.
#[derive(Clone)]
pub struct PostgresBackend {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    schema: String,
    limits: Limits,
    clock: SharedClock,
    completions: Completions,
    work: WorkSignal,
    listener: tokio::task::JoinHandle<()>,
    /// Queued single-execution transitions (see `single`).
    jobs: mpsc::UnboundedSender<single::Job>,
    /// Queued dispatches of solo completions (see `dispatch`).
    dispatches: mpsc::UnboundedSender<dispatch::Job>,
    /// Execution rows written since the last vacuum (see `vacuum`).
    churn: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("schema", &self.inner.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresBackend {
    /// Connects, creates the schema when missing, applies migrations and
    /// starts listening for wake-ups.
    #[tracing::instrument(level = "debug", skip_all, fields(schema = %config.schema))]
    pub async fn connect(config: PostgresConfig) -> Result<Self, EngineError> {
        config.validate()?;
        let pool = open_pool(
            &config.url,
            &config.schema,
            config.max_connections + 1,
            config.acquire_timeout,
        )
        .await?;
        migrations::migrate(&pool, config.schema.clone()).await?;
        let clock: SharedClock = match config.clock {
            Some(clock) => clock,
            None => {
                let pool = pool.clone();
                OffsetClock::start(move || {
                    let pool = pool.clone();
                    async move {
                        sqlx::query_scalar(
                            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                        )
                        .fetch_one(&pool)
                        .await
                        .db()
                    }
                })
                .await?
            }
        };
        let completions = Completions::new();
        let work = WorkSignal::new();
        let listener = tokio::spawn(listener::run(
            pool.clone(),
            config.schema.clone(),
            completions.clone(),
            work.clone(),
        ));
        let (jobs, queue) = queue::queue();
        let (dispatches, dispatch_queue) = queue::queue();
        let inner = Arc::new(Inner {
            pool,
            schema: config.schema,
            limits: config.limits,
            clock,
            completions,
            work,
            listener,
            jobs,
            dispatches,
            churn: AtomicU64::new(0),
        });
        tokio::spawn(vacuum::run(Arc::downgrade(&inner)));
        // The committers hold the backend weakly: dropping the last handle
        // closes the queue and ends them.
        for _ in 0..single::COMMITTERS {
            tokio::spawn(single::commit_loop(Arc::downgrade(&inner), queue.clone()));
        }
        for _ in 0..dispatch::COMMITTERS {
            tokio::spawn(dispatch::commit_loop(
                Arc::downgrade(&inner),
                dispatch_queue.clone(),
            ));
        }
        tracing::debug!(schema = inner.schema, "postgres backend connected");
        Ok(Self { inner })
    }

    /// The schema this backend keeps its tables in.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The connection pool, for tooling that reads the tables directly.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Closes the pool once every connection is returned.
    pub async fn close(&self) {
        self.inner.listener.abort();
        self.inner.pool.close().await;
    }

    fn now(&self) -> Millis {
        self.inner.clock.now_ms()
    }

    /// Counts rows written, for the vacuum's threshold.
    fn note_churn(&self, rows: usize) {
        self.inner
            .churn
            .fetch_add(rows as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Announces what a committed write did.
    fn announce(&self, saved: Saved) {
        self.note_churn(saved.written.len());
        if saved.wake {
            self.inner.work.bump();
        }
        self.inner.completions.publish_local(saved.completions);
    }
}

/// A pool whose sessions use `schema` and commit synchronously (the server
/// default, stated so a changed default cannot lose acknowledged writes).
pub async fn pool(url: &str, schema: &str, max_connections: u32) -> Result<PgPool, EngineError> {
    open_pool(url, schema, max_connections, DEFAULT_ACQUIRE_TIMEOUT).await
}

/// [`pool`] whose operations wait at most `acquire_timeout` for a
/// connection.
async fn open_pool(
    url: &str,
    schema: &str,
    max_connections: u32,
    acquire_timeout: std::time::Duration,
) -> Result<PgPool, EngineError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| EngineError::invalid("database_url", e.to_string()))?
        .application_name("flowfabric")
        .options([("search_path", schema), ("synchronous_commit", "on")])
        // Statements are traced by this crate's own spans; the driver's
        // per-statement and slow-statement logs (a deliberate VACUUM is
        // slow) would only repeat them.
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

/// Maps driver errors into the engine's.
pub(crate) trait PgResult<T> {
    fn db(self) -> Result<T, EngineError>;
}

impl<T> PgResult<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, EngineError> {
        self.map_err(classify)
    }
}

/// A lost or exhausted connection, or a server shutting down, starting up
/// or out of connections, is `Unavailable` (the call may be retried);
/// anything else the server or driver reports is `Backend`.
pub(crate) fn classify(err: sqlx::Error) -> EngineError {
    let unavailable = match &err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| is_unavailable_code(&code)),
        _ => false,
    };
    if unavailable {
        EngineError::Unavailable {
            message: err.to_string(),
        }
    } else {
        EngineError::backend(err)
    }
}

/// SQLSTATEs that say the server cannot serve now rather than that the
/// statement is wrong: class 08 (connection exception), 53300
/// (too_many_connections), 57P01-57P03 (admin or crash shutdown, cannot
/// connect now).
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "53300" | "57P01" | "57P02" | "57P03")
}

/// Whether `err` is worth retrying the whole operation: a unique index
/// raced (another writer inserted the same key first), a deadlock, or a
/// serialization failure.
pub(crate) fn is_retryable(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| matches!(code.as_ref(), "23505" | "40P01" | "40001"))
}

/// A failure of a shared statement helper, keeping the driver's error so
/// callers can tell a race worth retrying from a real failure.
#[derive(Debug)]
pub(crate) enum StoreError {
    Sql(sqlx::Error),
    Engine(EngineError),
}

impl StoreError {
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(self, Self::Sql(err) if is_retryable(err))
    }
}

impl From<EngineError> for StoreError {
    fn from(err: EngineError) -> Self {
        Self::Engine(err)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::Sql(err)
    }
}

impl From<StoreError> for EngineError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Sql(err) => classify(err),
            StoreError::Engine(err) => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_cannot_serve_now_is_unavailable() {
        for code in ["08006", "08001", "53300", "57P01", "57P03"] {
            assert!(is_unavailable_code(code), "{code}");
        }
        for code in ["23505", "40001", "42P01", "57014"] {
            assert!(!is_unavailable_code(code), "{code}");
        }
        let err = classify(sqlx::Error::PoolTimedOut);
        assert_eq!(err.kind(), ff_core::ErrorKind::Unavailable);
    }
}
