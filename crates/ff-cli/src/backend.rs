//! Opening the backend a `--database-url` names, shared by every command
//! that needs one.

use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use ff_backend_sqlite::{SqliteBackend, SqliteConfig, Synchronous};

use crate::db_url::DatabaseUrl;

/// The backend options every server-side command takes.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// The database: `sqlite://PATH` or a plain path.
    #[arg(
        long = "database-url",
        visible_alias = "db",
        env = "FF_DATABASE_URL",
        default_value = ".flowfabric/ff.db"
    )]
    pub database_url: String,
    /// SQLite durability: `full` survives power loss, `normal` only crashes.
    #[arg(long, value_enum, env = "FF_SQLITE_SYNCHRONOUS", default_value_t = SyncMode::Full)]
    pub synchronous: SyncMode,
}

/// `--synchronous` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SyncMode {
    Full,
    Normal,
}

impl From<SyncMode> for Synchronous {
    fn from(mode: SyncMode) -> Self {
        match mode {
            SyncMode::Full => Synchronous::Full,
            SyncMode::Normal => Synchronous::Normal,
        }
    }
}

impl DatabaseArgs {
    /// Opens the backend; the caller closes it when done.
    pub async fn open(&self) -> anyhow::Result<Arc<SqliteBackend>> {
        let DatabaseUrl::Sqlite(path) = DatabaseUrl::parse(&self.database_url)?;
        let config = SqliteConfig::new(&path).synchronous(self.synchronous.into());
        let backend = SqliteBackend::open(config)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Arc::new(backend))
    }
}
