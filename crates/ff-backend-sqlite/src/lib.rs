//! FlowFabric's embedded SQLite backend: one file, one owning process, one
//! writer thread that group-commits, a small pool of read connections.
//!
//! Entry points: [`SqliteBackend::open`] with a [`SqliteConfig`], then the
//! `ff_core` traits ([`ff_core::EngineBackend`], [`ff_core::CompletionBackend`]),
//! and [`SqliteBackend::close`] to drain the writer and release the file.
//!
//! # Layout
//! - [`config`]: [`SqliteConfig`] and [`Synchronous`].
//! - `lock`: the exclusive `<db>.lock` file that makes one process the owner.
//! - `migrations`: forward-only schema migrations (`migrations/*.sql`) and the
//!   `meta` table checks.
//! - `writer`: the writer thread and its group commit.
//! - `command`: one write command and `WriteCtx`, the handle it gets.
//! - `syncer`: the thread that fsyncs committed groups and only then
//!   answers them, so the fsync overlaps the next group.
//! - `checkpointer`: WAL checkpoints on their own thread.
//! - `readers`: the pool of read-only connections.
//! - `rows`: the one mapping between `Execution` and its row.
//! - `row_cache`: running executions the writer wrote, kept decoded.
//! - `error`: driver errors in the engine's terms.
//! - `transition`: one execution loaded, changed by a rule and saved, in
//!   one write command.
//! - `executions` (the `ExecutionStore`: transition, claim, submit),
//!   `leases` (claims), `flow_control` (policies and the limited claim),
//!   `flows` (the `FlowCommands`) with `flow_txn` (the
//!   `FlowStore` of one command), `maintenance`, `reads`, `completions`:
//!   each calls the `ff_core` rules inside a write command and persists
//!   what they changed.
//!
//! Every rule lives in `ff_core`: a write command loads the execution, calls
//! the pure function with the command's `now`, and writes the row back. SQL
//! only finds candidates (claim order, due scans) and stores results.

pub mod config;

mod checkpointer;
mod command;
mod completions;
mod error;
mod executions;
mod flow_control;
mod flow_txn;
mod flows;
mod leases;
mod lock;
mod maintenance;
mod migrations;
mod readers;
mod reads;
mod row_cache;
mod rows;
mod signals;
mod syncer;
mod transition;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ff_core::{EngineError, Limits, SharedClock};

pub use config::{SqliteConfig, Synchronous};

use checkpointer::Checkpointer;
use completions::Completions;
use error::{closed, SqlResult};
use ff_backend_support::WorkSignal;
use lock::LockFile;
use readers::Readers;
use syncer::Syncer;
use writer::Writer;

/// The embedded SQLite backend. Cheap to clone; clones share one database.
#[derive(Clone, Debug)]
pub struct SqliteBackend {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    synchronous: Synchronous,
    limits: Limits,
    clock: SharedClock,
    writer: Writer,
    readers: Readers,
    completions: Completions,
    work: WorkSignal,
    keyring: ff_core::suspension::KeyringCache,
    /// Candidates the claims passed over, by limit.
    passed_over: Arc<ff_core::flow_control::PassedOver>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteBackend {
    /// Opens (creating when missing) the database at `config.path`, takes its
    /// lock file, migrates the schema and starts the writer thread.
    ///
    /// Fails with `Conflict` when another owner holds the file (`database in
    /// use by pid N`) or when the file's schema is newer than this build.
    #[tracing::instrument(level = "debug", skip_all, fields(path = %config.path.display()))]
    pub async fn open(config: SqliteConfig) -> Result<Self, EngineError> {
        tokio::task::spawn_blocking(move || Self::open_blocking(config))
            .await
            .map_err(EngineError::backend)?
    }

    fn open_blocking(config: SqliteConfig) -> Result<Self, EngineError> {
        if let Some(parent) = config.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(EngineError::backend)?;
        }
        let lock = LockFile::acquire(&config.path)?;
        let mut conn = writer::open_connection(&config.path)?;
        migrations::migrate(&mut conn)?;
        let readers = Readers::open(&config.path, config.read_pool_size)?;
        let completions = Completions::new();
        let work = WorkSignal::new();
        let syncer = Syncer::spawn(
            &config.path,
            config.synchronous,
            completions.clone(),
            work.clone(),
        )?;
        let writer = Writer::spawn(writer::WriterSetup {
            conn,
            lock,
            clock: config.clock.clone(),
            max_group_commit: config.max_group_commit,
            max_group_duration: config.max_group_duration,
            syncer,
            checkpointer: Checkpointer::spawn(&config.path)?,
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: config.path,
                synchronous: config.synchronous,
                limits: config.limits,
                clock: config.clock,
                writer,
                readers,
                completions,
                work,
                keyring: Default::default(),
                passed_over: Default::default(),
            }),
        })
    }

    /// Drains the writer (every command already sent commits and is
    /// answered), closes the connections, then releases the lock file.
    /// Later calls on any clone answer `Unavailable`. Idempotent.
    #[tracing::instrument(level = "debug", skip_all, fields(path = %self.inner.path.display()))]
    pub async fn close(&self) {
        self.inner.readers.close();
        self.inner.writer.shutdown().await;
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

/// How long a connection waits on a lock held by another connection.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
