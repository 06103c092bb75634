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
//! - `write`: the versioned batch write every transition ends with.
//! - `completions`: the completion broadcast behind `subscribe_completions`.
//! - `listener`: the `LISTEN` connection that turns notifications into
//!   wake-ups and completion events.
//! - `transition`, `dispatch`: the group commits of single-execution
//!   transitions and of solo completions' dispatch.
//! - `flow_txn`: the flow algorithms' `FlowStore`, one transaction.
//! - `error`: driver errors in the engine's terms; `pool`: connection pools;
//!   `queue`: the queue group-committing tasks share; `throwaway`: a
//!   schema of its own for a test or a benchmark run.
//! - `vacuum`: keeps the hot tables' indexes free of dead entries.
//! - `executions` (the `ExecutionStore`: transition, claim, submit),
//!   `leases` (claims), `flow_control` (policies), `claim_limited` (the claim under them),
//!   `flows` (the `FlowCommands`), `maintenance`,
//!   `reads`: the `ff_core` traits.
//!
//! Every rule lives in `ff_core`: an operation reads the rows, calls the pure
//! function with the clock's `now`, and writes back what changed with a
//! version check, so a concurrent writer is detected instead of overwritten.
//! Claims and scans lock their rows with `FOR UPDATE SKIP LOCKED`; a flow's
//! operations lock the flow's row first, then its members.

pub mod config;
mod throwaway;

mod claim_limited;
mod completions;
mod dispatch;
mod error;
mod executions;
mod flow_control;
mod flow_txn;
mod flows;
mod leases;
mod listener;
mod maintenance;
mod migrations;
mod pool;
mod queue;
mod reads;
mod rows;
mod signals;
mod transition;
mod vacuum;
mod write;

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::mpsc;

use ff_backend_support::WorkSignal;

use ff_core::{EngineError, Limits, Millis, SharedClock};

pub use config::{PostgresConfig, DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_SCHEMA};
pub use migrations::drop_schema;
pub use throwaway::ThrowawaySchema;

use completions::Completions;
use error::PgResult;
pub(crate) use error::{classify, is_retryable, StoreError};
use pool::open_pool;
pub use pool::pool;

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
    /// Queued single-execution transitions (see `transition`).
    jobs: mpsc::UnboundedSender<Box<dyn transition::Job>>,
    /// Queued dispatches of solo completions (see `dispatch`).
    dispatches: mpsc::UnboundedSender<dispatch::Job>,
    /// Execution rows written since the last vacuum (see `vacuum`).
    churn: AtomicU64,
    keyring: ff_core::suspension::KeyringCache,
    /// Candidates the claims passed over, by limit.
    passed_over: Arc<ff_core::flow_control::PassedOver>,
    /// Namespaces seen with flow-control policies, whose claims take the
    /// limited path at once.
    limited: std::sync::Mutex<std::collections::HashSet<String>>,
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
            None => pool::server_clock(&pool).await?,
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
            keyring: Default::default(),
            passed_over: Default::default(),
            limited: Default::default(),
        });
        tokio::spawn(vacuum::run(Arc::downgrade(&inner)));
        // The committers hold the backend weakly: dropping the last handle
        // closes the queue and ends them.
        for _ in 0..transition::COMMITTERS {
            tokio::spawn(transition::commit_loop(
                Arc::downgrade(&inner),
                queue.clone(),
            ));
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
}
