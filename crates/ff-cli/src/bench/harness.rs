//! The test bed of one measured run: a backend (by default on a fresh temp
//! file), the engine running on it as `ff serve` runs it, and a lane of its
//! own so runs never see each other's executions, even on a shared database.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ff_backend_sqlite::{SqliteBackend, SqliteConfig};
use ff_core::EngineBackend;
use ff_engine::{Engine, EngineConfig};

use crate::backend::{Backend, SyncMode};
use crate::db_url::DatabaseUrl;

/// The handler name of every benchmark execution.
pub const KIND: &str = "bench.noop";

/// Where runs store their data.
#[derive(Debug, Clone)]
pub struct Target {
    /// `None`: a fresh temp file per run. A Postgres URL: a fresh schema
    /// per run, dropped after it.
    pub database_url: Option<String>,
    pub synchronous: SyncMode,
    /// Valkey partitions of each run's fresh prefix.
    pub partitions: Option<u32>,
}

impl Target {
    /// How the report names the database.
    pub fn describe(&self) -> String {
        match &self.database_url {
            Some(url) => crate::db_url::redacted(url),
            None => "a fresh temp SQLite file per run".to_owned(),
        }
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
    opened: Backend,
    _scratch: Option<Scratch>,
}

impl Bed {
    /// Opens the target's database (a new temp file unless a URL is given;
    /// a new schema on Postgres, a new key prefix on Valkey) and starts the engine on it.
    pub async fn open(target: &Target, scenario: &str) -> anyhow::Result<Self> {
        let parsed = target
            .database_url
            .as_deref()
            .map(DatabaseUrl::parse)
            .transpose()?;
        let (opened, scratch) = match parsed {
            Some(DatabaseUrl::Postgres(url)) => {
                let schema = format!("ff_bench_{}", unique().replace('-', "_"));
                (Backend::postgres(&url, &schema, true).await?, None)
            }
            Some(DatabaseUrl::Valkey(url)) => {
                let prefix = format!("ff-bench-{}", unique());
                (
                    Backend::valkey(&url, &prefix, target.partitions, true).await?,
                    None,
                )
            }
            Some(DatabaseUrl::Sqlite(path)) => {
                (open_sqlite(&path, target.synchronous).await?, None)
            }
            None => {
                let scratch = Scratch::new(scenario)?;
                let path = scratch.path().join("ff.db");
                (open_sqlite(&path, target.synchronous).await?, Some(scratch))
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

async fn open_sqlite(path: &Path, synchronous: SyncMode) -> anyhow::Result<Backend> {
    let config = SqliteConfig::new(path).synchronous(synchronous.into());
    let backend = SqliteBackend::open(config)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(Backend::sqlite(Arc::new(backend)))
}
