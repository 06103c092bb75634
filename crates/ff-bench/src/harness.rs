//! The test bed of one measured run: a backend (by default on a fresh temp
//! file), the engine running on it as `ff serve` runs it, and a lane of its
//! own so runs never see each other's executions, even on a shared database.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ff_core::EngineBackend;
use ff_engine::{Engine, EngineConfig};

use crate::opener::{Database, Opened, Opener, Store, Synchronous};

/// The handler name of every benchmark execution.
pub const KIND: &str = "bench.noop";

/// Where runs store their data.
#[derive(Debug, Clone)]
pub struct Target {
    /// `None`: a fresh temp file per run. A Postgres URL: a fresh schema
    /// per run, dropped after it; a Valkey URL: a fresh key prefix.
    pub database: Option<Database>,
    /// How the report names the database (passwords hidden).
    pub shown: String,
    pub synchronous: Synchronous,
    /// Valkey partitions of each run's fresh prefix.
    pub partitions: Option<u32>,
}

impl Target {
    /// Parses `--database-url` (`None`: a fresh temp file per run).
    pub fn new(
        opener: &dyn Opener,
        database_url: Option<&str>,
        synchronous: Synchronous,
        partitions: Option<u32>,
    ) -> anyhow::Result<Self> {
        let database = database_url.map(|url| opener.resolve(url)).transpose()?;
        let shown = match database_url {
            Some(url) => opener.redact(url),
            None => "a fresh temp SQLite file per run".to_owned(),
        };
        Ok(Self {
            database,
            shown,
            synchronous,
            partitions,
        })
    }

    /// Whether runs go to a server rather than a SQLite file.
    pub fn is_server(&self) -> bool {
        matches!(
            self.database,
            Some(Database::Postgres(_) | Database::Valkey(_))
        )
    }
}

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(label: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("ff-bench-{label}-{}", unique()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(%error, dir = %self.0.display(), "could not remove the scratch directory");
        }
    }
}

/// A name no other run of any process uses: pid, time and a counter.
pub fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}-{nanos:09}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One run's backend, engine and lane.
#[derive(Debug)]
pub struct Bed {
    pub backend: Arc<dyn EngineBackend>,
    pub engine: Engine,
    pub lane: String,
    opened: Opened,
    _scratch: Option<Scratch>,
}

impl Bed {
    /// Opens the target's database (a new temp file unless a URL is given;
    /// a new schema on Postgres, a new key prefix on Valkey) and starts the engine on it.
    pub async fn open(
        opener: &dyn Opener,
        target: &Target,
        scenario: &str,
    ) -> anyhow::Result<Self> {
        let synchronous = target.synchronous;
        let (opened, scratch) = match &target.database {
            Some(Database::Postgres(url)) => {
                let schema = format!("ff_bench_{}", unique().replace('-', "_"));
                let store = Store::PostgresSchema {
                    url,
                    schema: &schema,
                };
                (opener.open(store).await?, None)
            }
            Some(Database::Valkey(url)) => {
                let prefix = format!("ff-bench-{}", unique());
                let store = Store::ValkeyPrefix {
                    url,
                    prefix: &prefix,
                    partitions: target.partitions,
                };
                (opener.open(store).await?, None)
            }
            Some(Database::Sqlite(path)) => {
                let store = Store::Sqlite { path, synchronous };
                (opener.open(store).await?, None)
            }
            None => {
                let scratch = Scratch::new(scenario)?;
                let path = scratch.path().join("ff.db");
                let store = Store::Sqlite {
                    path: &path,
                    synchronous,
                };
                (opener.open(store).await?, Some(scratch))
            }
        };
        let engine = Engine::start(
            opened.engine.clone(),
            opened.completions.clone(),
            EngineConfig::default(),
        );
        Ok(Self {
            backend: opened.engine.clone(),
            engine,
            lane: format!("bench-{scenario}-{}", unique()),
            opened,
            _scratch: scratch,
        })
    }

    /// Stops the engine, drains the backend and frees the file or drops the
    /// schema (then the scratch directory, if any, is removed).
    pub async fn close(self) {
        self.engine.shutdown().await;
        self.opened.close().await;
    }
}
