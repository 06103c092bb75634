//! `ff bench`'s way to its backends: `ff-bench` names none, so `ff` hands it
//! this [`Opener`], built on the URL parsing and the backend opening every
//! other command uses.

use async_trait::async_trait;
use ff_bench::{Database, Opened, Opener, Store, Synchronous};

use crate::backend::{Backend, SyncMode};
use crate::db_url::{self, DatabaseUrl};

/// Opens `ff bench`'s stores through [`Backend`].
#[derive(Debug, Clone, Copy)]
pub struct BenchOpener;

#[async_trait]
impl Opener for BenchOpener {
    fn resolve(&self, url: &str) -> anyhow::Result<Database> {
        Ok(match DatabaseUrl::parse(url)? {
            DatabaseUrl::Sqlite(path) => Database::Sqlite(path),
            DatabaseUrl::Postgres(url) => Database::Postgres(url),
            DatabaseUrl::Valkey(url) => Database::Valkey(url),
        })
    }

    async fn open(&self, store: Store<'_>) -> anyhow::Result<Opened> {
        let backend = match store {
            Store::Sqlite { path, synchronous } => {
                Backend::sqlite_file(path, synchronous.into()).await?
            }
            Store::PostgresSchema { url, schema } => Backend::postgres(url, schema, true).await?,
            Store::ValkeyPrefix {
                url,
                prefix,
                partitions,
            } => Backend::valkey(url, prefix, partitions, true).await?,
        };
        Ok(Opened::new(
            backend.engine.clone(),
            backend.completions.clone(),
            move || Box::pin(async move { backend.close().await }),
        ))
    }

    fn redact(&self, text: &str) -> String {
        db_url::redacted(text)
    }
}

impl From<Synchronous> for SyncMode {
    fn from(level: Synchronous) -> Self {
        match level {
            Synchronous::Full => SyncMode::Full,
            Synchronous::Normal => SyncMode::Normal,
        }
    }
}
