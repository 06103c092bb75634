//! Opening the backend a `--database-url` names, shared by every command
//! that needs one.

use std::fmt;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use ff_backend_postgres::{PostgresBackend, PostgresConfig};
use ff_backend_sqlite::{SqliteBackend, SqliteConfig, Synchronous};
use ff_backend_valkey::{ValkeyBackend, ValkeyConfig};
use ff_core::{CompletionBackend, EngineBackend};
use ff_engine::Instrumented;

use crate::db_url::DatabaseUrl;

/// The backend options every server-side command takes.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// The database: `sqlite://PATH`, a plain path, `postgres://...`,
    /// `redis://HOST:PORT` or `redis+cluster://HOST:PORT[,HOST:PORT...]`.
    #[arg(
        long = "database-url",
        visible_alias = "db",
        env = "FF_DATABASE_URL",
        default_value = ".flowfabric/ff.db"
    )]
    pub database_url: String,
    /// SQLite durability: `full` survives power loss, `normal` only crashes.
    /// (Postgres always commits synchronously.)
    #[arg(long, value_enum, env = "FF_SQLITE_SYNCHRONOUS", default_value_t = SyncMode::Full)]
    pub synchronous: SyncMode,
    #[command(flatten)]
    pub placement: Placement,
}

/// Where on a shared server this deployment lives.
#[derive(Debug, Clone, Args)]
pub struct Placement {
    /// The Postgres schema FlowFabric's tables live in.
    #[arg(long, env = "FF_POSTGRES_SCHEMA", default_value = ff_backend_postgres::DEFAULT_SCHEMA)]
    pub postgres_schema: String,
    /// The prefix of every Valkey/Redis key and channel FlowFabric uses.
    #[arg(long, env = "FF_REDIS_PREFIX", default_value = ff_backend_valkey::DEFAULT_PREFIX)]
    pub redis_prefix: String,
    /// Valkey/Redis partitions, fixed when the prefix is first used
    /// (default 1 on one server, 16 on a cluster; later runs may leave it
    /// out).
    #[arg(long, env = "FF_PARTITIONS")]
    pub partitions: Option<u32>,
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
    /// Refuses a SQLite path whose directory is missing, unless `create`
    /// or it is the default path, whose directory the tool owns.
    pub fn check_sqlite_dir(&self, create: bool) -> anyhow::Result<()> {
        let DatabaseUrl::Sqlite(path) = DatabaseUrl::parse(&self.database_url)? else {
            return Ok(());
        };
        let is_default = without_cur_dir(&path) == without_cur_dir(&SqliteConfig::default_path());
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => return Ok(()),
        };
        if create || is_default || dir.is_dir() {
            return Ok(());
        }
        anyhow::bail!(
            "the directory {} of the database {} does not exist; create it, or pass --create-dirs",
            dir.display(),
            path.display()
        )
    }

    /// What the database is, in one line for the operator: the backend and
    /// its file, schema or key prefix (passwords redacted).
    pub fn describe(&self) -> String {
        match DatabaseUrl::parse(&self.database_url) {
            Ok(DatabaseUrl::Sqlite(path)) => {
                let path = std::path::absolute(&path).unwrap_or(path);
                let sync = match self.synchronous {
                    SyncMode::Full => "full",
                    SyncMode::Normal => "normal",
                };
                format!(
                    "backend sqlite, file {} (synchronous {sync})",
                    path.display()
                )
            }
            Ok(DatabaseUrl::Postgres(url)) => format!(
                "backend postgres, schema {} at {}",
                self.placement.postgres_schema,
                crate::db_url::redacted(&url)
            ),
            Ok(DatabaseUrl::Valkey(url)) => format!(
                "backend {}, prefix {} at {}",
                if url.starts_with("redis+cluster://") {
                    "redis cluster"
                } else {
                    "redis"
                },
                self.placement.redis_prefix,
                crate::db_url::redacted(&url)
            ),
            Err(_) => format!("backend {}", crate::db_url::redacted(&self.database_url)),
        }
    }

    /// Opens the backend; the caller closes it when done.
    pub async fn open(&self) -> anyhow::Result<Backend> {
        Backend::open(&self.database_url, self.synchronous, &self.placement).await
    }
}

/// `path`'s components without `.`: `./a/b` and `a/b` name the same file.
fn without_cur_dir(path: &std::path::Path) -> Vec<std::path::Component<'_>> {
    path.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// An open backend of either kind, as the engine and server take it.
#[derive(Clone)]
pub struct Backend {
    pub engine: Arc<dyn EngineBackend>,
    pub completions: Arc<dyn CompletionBackend>,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Sqlite(Arc<SqliteBackend>),
    /// With whether `close` drops the schema (a throwaway schema).
    Postgres(Arc<PostgresBackend>, bool),
    /// With the URL and prefix when `close` deletes the keys (a throwaway
    /// prefix).
    Valkey(Arc<ValkeyBackend>, Option<(String, String)>),
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.engine, f)
    }
}

impl Backend {
    /// Opens what `url` names, where `placement` says on a shared server.
    pub async fn open(
        url: &str,
        synchronous: SyncMode,
        placement: &Placement,
    ) -> anyhow::Result<Self> {
        match DatabaseUrl::parse(url)? {
            DatabaseUrl::Sqlite(path) => Self::sqlite_file(&path, synchronous).await,
            DatabaseUrl::Postgres(url) => {
                Self::postgres(&url, &placement.postgres_schema, false).await
            }
            DatabaseUrl::Valkey(url) => {
                Self::valkey(&url, &placement.redis_prefix, placement.partitions, false).await
            }
        }
    }

    /// Opens (creating when missing) the SQLite file at `path`.
    pub async fn sqlite_file(
        path: &std::path::Path,
        synchronous: SyncMode,
    ) -> anyhow::Result<Self> {
        let config = SqliteConfig::new(path).synchronous(synchronous.into());
        let backend = SqliteBackend::open(config)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self::sqlite(Arc::new(backend)))
    }

    /// Connects to Valkey/Redis at `url`, under `prefix`; `throwaway` makes
    /// `close` delete the prefix's keys.
    pub async fn valkey(
        url: &str,
        prefix: &str,
        partitions: Option<u32>,
        throwaway: bool,
    ) -> anyhow::Result<Self> {
        let mut config = ValkeyConfig::new(url).prefix(prefix);
        config.partitions = partitions;
        let backend = ValkeyBackend::connect(config).await.with_context(|| {
            format!(
                "connecting to {} (prefix {prefix})",
                crate::db_url::redacted(url)
            )
        })?;
        let backend = Arc::new(backend);
        Ok(Self {
            engine: Instrumented::wrap(backend.clone(), "valkey"),
            completions: backend.clone(),
            kind: Kind::Valkey(
                backend,
                throwaway.then(|| (url.to_owned(), prefix.to_owned())),
            ),
        })
    }

    /// Connects to Postgres at `url`, in `schema`; `throwaway` makes `close`
    /// drop the schema.
    pub async fn postgres(url: &str, schema: &str, throwaway: bool) -> anyhow::Result<Self> {
        let config = PostgresConfig::new(url).schema(schema);
        let backend = PostgresBackend::connect(config)
            .await
            .with_context(|| format!("connecting to Postgres (schema {schema})"))?;
        let backend = Arc::new(backend);
        Ok(Self {
            engine: Instrumented::wrap(backend.clone(), "postgres"),
            completions: backend.clone(),
            kind: Kind::Postgres(backend, throwaway),
        })
    }

    pub fn sqlite(backend: Arc<SqliteBackend>) -> Self {
        Self {
            engine: Instrumented::wrap(backend.clone(), "sqlite"),
            completions: backend.clone(),
            kind: Kind::Sqlite(backend),
        }
    }

    /// Drains and releases the backend: every acknowledged write is durable
    /// and the SQLite file is free for the next process.
    pub async fn close(&self) {
        match &self.kind {
            Kind::Sqlite(backend) => backend.close().await,
            Kind::Postgres(backend, throwaway) => {
                if *throwaway {
                    let dropped =
                        ff_backend_postgres::drop_schema(backend.pool(), backend.schema()).await;
                    if let Err(error) = dropped {
                        tracing::warn!(%error, schema = backend.schema(), "could not drop the throwaway schema");
                    }
                }
                backend.close().await;
            }
            Kind::Valkey(backend, throwaway) => {
                backend.close().await;
                if let Some((url, prefix)) = throwaway {
                    if let Err(error) = ff_backend_valkey::drop_prefix(url, prefix).await {
                        tracing::warn!(%error, prefix, "could not delete the throwaway prefix's keys");
                    }
                }
            }
        }
    }
}
