//! FlowFabric's Valkey / Redis backend, on one server (`redis://`) or a
//! cluster (`redis+cluster://`), Redis ≥ 7.0 or Valkey ≥ 7.2.
//!
//! Entry points: [`ValkeyBackend::connect`] with a [`ValkeyConfig`], then
//! the `ff_core` traits ([`ff_core::EngineBackend`],
//! [`ff_core::CompletionBackend`]).
//!
//! Every rule lives in `ff_core`, as on the SQL backends: an operation reads
//! the hashes it needs, calls the pure function with the clock's `now`, and
//! writes the result with one `FCALL` of the Lua library (`lua/`), which
//! checks the versions the rules depend on, writes the execution, its index
//! entries and counts, and appends and publishes outbox entries, atomically.
//! A raced write is retried from the read. The claim is the one rule the
//! library applies itself (`lua/claim.lua`), because it must pick and take
//! executions in one step; the differential test holds it to the Rust rule.
//!
//! # Layout
//! - `config`: [`ValkeyConfig`] and the URL forms; `keys`: the key layout
//!   and partitions; `rows`: `Execution` ↔ hash; `conn`, `library`: the
//!   connection and the Lua library.
//! - `write`: the versioned write every transition ends with; `hints`: which
//!   partitions may hold work; `row_cache`: the executions this process holds
//!   leases on, as it last wrote them
//! - `listener`: completion events and wake-ups from pub/sub, fed to
//!   `completions`, the broadcast behind `subscribe_completions`;
//!   `throwaway`: throwaway prefixes for tests and benchmarks.
//! - `error`: driver errors in the engine's terms; `migrations`: the
//!   deployment's settings record; `transition`: one execution read,
//!   changed by a rule and written.
//! - `executions` (the `ExecutionStore`: transition, claim, submit),
//!   `leases` (claims), `flow_control` (policies, buckets and usage in
//!   each namespace's home partition), `flows` (the `FlowCommands`) with
//!   `flow_txn`, `maintenance`, `reads`: the `ff_core` traits.

pub mod config;
mod throwaway;

mod completions;
mod conn;
mod error;
mod executions;
mod flow_control;
mod flow_txn;
mod flows;
mod hints;
mod keys;
mod leases;
mod library;
mod listener;
mod maintenance;
mod migrations;
mod reads;
mod row_cache;
mod rows;
mod signals;
mod transition;
mod write;

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

use ff_backend_support::{CompletionBroadcast, WorkSignal};

use ff_core::{EngineError, Limits, Millis, SharedClock};

pub use config::{Endpoint, ValkeyConfig, DEFAULT_PREFIX};
pub use migrations::SCHEMA_VERSION;
pub use throwaway::{drop_prefix, ThrowawayPrefix};

use conn::Conn;
use hints::Hints;
use keys::Keys;

/// Attempts of an operation whose write keeps racing another writer.
const MAX_ATTEMPTS: u32 = 64;

/// The Valkey backend. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct ValkeyBackend {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Conn,
    /// The node `describe` asks about the server: a cluster's first seed.
    first_node: String,
    keys: Keys,
    limits: Limits,
    clock: SharedClock,
    completions: CompletionBroadcast,
    hints: Arc<Hints>,
    /// Running executions as this process last claimed or wrote them.
    row_cache: Arc<row_cache::RowCache>,
    /// Where each partition's blocked-member scan goes on from.
    reconcile_from: flows::Cursors,
    work: WorkSignal,
    /// Whether the listener is listening now.
    subscribed: watch::Sender<bool>,
    listener: tokio::task::JoinHandle<()>,
    keyring: ff_core::suspension::KeyringCache,
    /// Candidates the claims passed over, by limit.
    passed_over: Arc<ff_core::flow_control::PassedOver>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl fmt::Debug for ValkeyBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValkeyBackend")
            .field("conn", &self.inner.conn)
            .field("partitions", &self.inner.keys.partitions())
            .finish_non_exhaustive()
    }
}

impl ValkeyBackend {
    /// Connects, checks or records the deployment's settings, loads the Lua
    /// library on every primary and subscribes to completions and wake-ups.
    #[tracing::instrument(level = "debug", skip_all, fields(prefix = %config.prefix))]
    pub async fn connect(config: ValkeyConfig) -> Result<Self, EngineError> {
        config.validate()?;
        let endpoint = Endpoint::parse(&config.url)?;
        let conn = Conn::open(&endpoint, &config).await?;
        let partitions = migrations::settle_meta(&conn, &config).await?;
        let keys = Keys::new(&config.prefix, partitions);
        library::load(&conn).await?;
        for p in 0..partitions {
            library::verify(&conn, keys.base(p)).await?;
        }
        let clock: SharedClock = match config.clock {
            Some(clock) => clock,
            None => conn.server_clock().await?,
        };
        let completions = CompletionBroadcast::new();
        let work = WorkSignal::new();
        let hints = Arc::new(Hints::new(partitions));
        let subscribed = watch::channel(false).0;
        let row_cache = Arc::new(row_cache::RowCache::default());
        let listener = tokio::spawn(
            listener::Listener {
                nodes: endpoint.nodes(),
                connect_timeout: config.connect_timeout,
                conn: conn.clone(),
                keys: keys.clone(),
                completions: completions.clone(),
                hints: hints.clone(),
                work: work.clone(),
                subscribed: subscribed.clone(),
                row_cache: row_cache.clone(),
            }
            .run(),
        );
        let inner = Arc::new(Inner {
            conn,
            first_node: endpoint.first_node().to_owned(),
            keys,
            limits: config.limits,
            clock,
            completions,
            hints,
            row_cache,
            reconcile_from: flows::Cursors::default(),
            work,
            subscribed,
            listener,
            keyring: Default::default(),
            passed_over: Default::default(),
        });
        tracing::debug!(partitions, "valkey backend connected");
        Ok(Self { inner })
    }

    /// The number of partitions.
    pub fn partitions(&self) -> u32 {
        self.inner.keys.partitions()
    }

    /// Stops the listener; the connection closes when the last clone
    /// drops. Async like the other backends' `close`, so callers treat
    /// them alike.
    pub async fn close(&self) {
        self.inner.listener.abort();
    }

    fn now(&self) -> Millis {
        self.inner.clock.now_ms()
    }

    fn keys(&self) -> &Keys {
        &self.inner.keys
    }
}
