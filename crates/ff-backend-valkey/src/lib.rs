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
//!   and partitions; `record`: `Execution` ↔ hash; `conn`, `library`: the
//!   connection and the Lua library.
//! - `write`: the versioned write every transition ends with; `hints`: which
//!   partitions may hold work; `leased`: the executions this process holds
//!   leases on, as it last wrote them
//! - `subscriber`: completion events and wake-ups from pub/sub, fed to
//!   `completions`, the broadcast behind `subscribe_completions`;
//!   `scratch`: throwaway prefixes for tests and benchmarks.
//! - `executions`, `leases`, `flows` (with `flow_txn`), `maintenance`,
//!   `reads`: one file per `ff_core` trait.

pub mod config;
mod scratch;

mod completions;
mod conn;
mod executions;
mod flow_txn;
mod flows;
mod hints;
mod keys;
mod leased;
mod leases;
mod library;
mod maintenance;
mod reads;
mod record;
mod subscriber;
mod write;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

use ff_backend_support::{CompletionBroadcast, OffsetClock, WorkSignal};

use ff_core::{EngineError, Execution, ExecutionId, Limits, Millis, SharedClock};

pub use config::{Endpoint, ValkeyConfig, DEFAULT_PREFIX};
pub use scratch::{drop_prefix, ScratchPrefix};

use conn::Conn;
use hints::Hints;
use keys::Keys;
use record::Stored;
use write::{Outcome, Plan};

/// The version of the key layout this build writes.
pub const SCHEMA_VERSION: u32 = 1;

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
    leased: Arc<leased::Leased>,
    /// Where each partition's blocked-member scan goes on from.
    reconcile_from: Cursors,
    work: WorkSignal,
    /// Whether the subscriber is listening now.
    subscribed: watch::Sender<bool>,
    subscriber: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.subscriber.abort();
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
        let partitions = settle_meta(&conn, &config).await?;
        let keys = Keys::new(&config.prefix, partitions);
        library::load(&conn).await?;
        for p in 0..partitions {
            library::verify(&conn, keys.base(p)).await?;
        }
        let clock: SharedClock = match config.clock {
            Some(clock) => clock,
            None => {
                let conn = conn.clone();
                OffsetClock::start(move || {
                    let conn = conn.clone();
                    async move {
                        let (secs, micros): (i64, i64) = conn.query(&redis::cmd("TIME")).await?;
                        Ok(secs * 1000 + micros / 1000)
                    }
                })
                .await?
            }
        };
        let completions = CompletionBroadcast::new();
        let work = WorkSignal::new();
        let hints = Arc::new(Hints::new(partitions));
        let subscribed = watch::channel(false).0;
        let leased = Arc::new(leased::Leased::default());
        let subscriber = tokio::spawn(
            subscriber::Subscriber {
                nodes: endpoint.nodes(),
                connect_timeout: config.connect_timeout,
                conn: conn.clone(),
                keys: keys.clone(),
                completions: completions.clone(),
                hints: hints.clone(),
                work: work.clone(),
                subscribed: subscribed.clone(),
                leased: leased.clone(),
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
            leased,
            reconcile_from: Cursors::default(),
            work,
            subscribed,
            subscriber,
        });
        tracing::debug!(partitions, "valkey backend connected");
        Ok(Self { inner })
    }

    /// The number of partitions.
    pub fn partitions(&self) -> u32 {
        self.inner.keys.partitions()
    }

    /// Stops the subscriber; the connection closes when the last clone
    /// drops. Async like the other backends' `close`, so callers treat
    /// them alike.
    pub async fn close(&self) {
        self.inner.subscriber.abort();
    }

    fn now(&self) -> Millis {
        self.inner.clock.now_ms()
    }

    fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// One execution and its version; `None` when unknown.
    async fn load(&self, id: ExecutionId) -> Result<Option<Stored>, EngineError> {
        let p = self.keys().exec_partition(id);
        let fields: HashMap<String, String> = self
            .inner
            .conn
            .query(redis::cmd("HGETALL").arg(self.keys().exec(p, id)))
            .await?;
        record::decode(fields)
    }

    /// Several executions of one partition in one round trip, in `ids`
    /// order, `None` for unknown ones.
    async fn load_many(&self, p: u32, ids: &[String]) -> Result<Vec<Option<Stored>>, EngineError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL").arg(self.keys().exec_str(p, id));
        }
        let rows: Vec<HashMap<String, String>> = self.query_pipe(&pipe).await?;
        rows.into_iter().map(record::decode).collect()
    }

    async fn query_pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, EngineError> {
        self.inner.conn.pipe(pipe).await
    }

    /// Applies `rule` to one execution and writes what changed, retried
    /// from the read when another writer got there first.
    #[tracing::instrument(level = "trace", skip_all, fields(%id))]
    async fn transition<T, F>(&self, id: ExecutionId, rule: F) -> Result<T, EngineError>
    where
        F: Fn(&mut Execution, Millis) -> T + Send,
    {
        let mut cached = self.inner.leased.take(id);
        for _ in 0..MAX_ATTEMPTS {
            let from_cache = cached.is_some();
            let stored = match cached.take() {
                Some(stored) => stored,
                None => self
                    .load(id)
                    .await?
                    .ok_or_else(|| EngineError::execution_not_found(id))?,
            };
            let now = self.now();
            let mut exec = stored.exec.clone();
            let out = rule(&mut exec, now);
            if exec == stored.exec {
                if from_cache {
                    // Nothing to write: answer from the server's copy, not
                    // from what this process last wrote.
                    continue;
                }
                return Ok(out);
            }
            let mut plan = Plan::new(self.keys().exec_partition(id));
            let changed = plan.save(self.keys(), Some(&stored), &exec, now)?;
            match self.commit(plan, now).await? {
                Outcome::Applied => {
                    self.inner.leased.keep_written(stored, exec, changed);
                    return Ok(out);
                }
                Outcome::Conflict(what) => tracing::trace!(what, "transition raced; retrying"),
            }
        }
        Err(EngineError::Unavailable {
            message: format!("execution {id} kept changing under this write; try again"),
        })
    }
}

/// Per partition, the last id a resumable scan returned.
#[derive(Debug, Default)]
struct Cursors(std::sync::Mutex<HashMap<u32, String>>);

impl Cursors {
    fn get(&self, p: u32) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&p)
            .cloned()
    }

    fn set(&self, p: u32, id: Option<String>) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match id {
            Some(id) => map.insert(p, id),
            None => map.remove(&p),
        };
    }
}

/// Reads the deployment's settings, recording them on first use; refuses a
/// newer layout or a different partition count.
async fn settle_meta(conn: &Conn, config: &ValkeyConfig) -> Result<u32, EngineError> {
    let meta = format!("{}:meta", config.prefix);
    let wanted = config.partitions.unwrap_or(if conn.is_cluster() {
        config::DEFAULT_PARTITIONS_CLUSTER
    } else {
        config::DEFAULT_PARTITIONS_STANDALONE
    });
    let _: i64 = conn
        .query(
            redis::cmd("HSETNX")
                .arg(&meta)
                .arg("partitions")
                .arg(wanted),
        )
        .await?;
    let _: i64 = conn
        .query(
            redis::cmd("HSETNX")
                .arg(&meta)
                .arg("schema_version")
                .arg(SCHEMA_VERSION),
        )
        .await?;
    let (partitions, version): (Option<u32>, Option<u32>) = conn
        .query(
            redis::cmd("HMGET")
                .arg(&meta)
                .arg("partitions")
                .arg("schema_version"),
        )
        .await?;
    let (Some(partitions), Some(version)) = (partitions, version) else {
        return Err(EngineError::backend(format!("{meta} is incomplete")));
    };
    if partitions == 0 || partitions > config::MAX_PARTITIONS {
        return Err(EngineError::backend(format!(
            "{meta} records {partitions} partitions, outside 1..={}",
            config::MAX_PARTITIONS
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(EngineError::Conflict {
            message: format!(
                "prefix `{}` holds schema version {version}, newer than this build's {SCHEMA_VERSION}; upgrade ff",
                config.prefix
            ),
        });
    }
    if config.partitions.is_some_and(|p| p != partitions) {
        return Err(EngineError::Conflict {
            message: format!(
                "prefix `{}` was created with {partitions} partitions, not {wanted}; the count is fixed",
                config.prefix
            ),
        });
    }
    Ok(partitions)
}
