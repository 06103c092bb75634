//! The test bed of one measured run: a backend (by default on a fresh temp
//! file), the engine running on it as `ff serve` runs it, and a lane of its
//! own so runs never see each other's executions, even on a shared database.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ff_backend_sqlite::{SqliteBackend, SqliteConfig};
use ff_engine::{Engine, EngineConfig};

use crate::backend::SyncMode;
use crate::db_url::DatabaseUrl;

/// The handler name of every benchmark execution.
pub const KIND: &str = "bench.noop";

/// Where runs store their data.
#[derive(Debug, Clone)]
pub struct Target {
    /// `None`: a fresh temp file per run.
    pub database_url: Option<String>,
    pub synchronous: SyncMode,
}

impl Target {
    /// How the report names the database.
    pub fn describe(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| "a fresh temp SQLite file per run".to_owned())
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
    pub backend: Arc<SqliteBackend>,
    pub engine: Engine,
    pub lane: String,
    _scratch: Option<Scratch>,
}

impl Bed {
    /// Opens the target's database (a new temp file unless a URL is given)
    /// and starts the engine on it.
    pub async fn open(target: &Target, scenario: &str) -> anyhow::Result<Self> {
        let (path, scratch) = match &target.database_url {
            Some(url) => {
                let DatabaseUrl::Sqlite(path) = DatabaseUrl::parse(url)?;
                (path, None)
            }
            None => {
                let scratch = Scratch::new(scenario)?;
                (scratch.path().join("ff.db"), Some(scratch))
            }
        };
        let config = SqliteConfig::new(&path).synchronous(target.synchronous.into());
        let backend = SqliteBackend::open(config)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        let backend = Arc::new(backend);
        let engine = Engine::start(backend.clone(), backend.clone(), EngineConfig::default());
        Ok(Self {
            backend,
            engine,
            lane: format!("bench-{scenario}-{}", unique()),
            _scratch: scratch,
        })
    }

    /// Stops the engine, drains the writer and frees the file (then the
    /// scratch directory, if any, is removed).
    pub async fn close(self) {
        self.engine.shutdown().await;
        self.backend.close().await;
    }
}
