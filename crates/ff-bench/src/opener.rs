//! How the bench reaches a backend without naming one: the [`Opener`] its
//! caller passes in. The bench decides what each run needs (a fresh temp
//! file, a fresh Postgres schema, a fresh Valkey key prefix) and asks the
//! opener for it; the opener is the caller's own URL parsing and backend
//! opening, the code `ff serve` opens its database with, so there is one of
//! each in the workspace.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use clap::ValueEnum;
use ff_core::{CompletionBackend, EngineBackend};
use futures::future::BoxFuture;

/// Parses database URLs and opens backends for the bench.
#[async_trait]
pub trait Opener: Send + Sync {
    /// What a `--database-url` names; an error for a URL no backend takes.
    fn resolve(&self, url: &str) -> anyhow::Result<Database>;

    /// Opens one run's store. A schema or key prefix is new and is removed
    /// again by [`Opened::close`].
    async fn open(&self, store: Store<'_>) -> anyhow::Result<Opened>;

    /// `text` with the password of any URL in it hidden, as the report and
    /// the command line it prints show URLs.
    fn redact(&self, text: &str) -> String;
}

/// A parsed `--database-url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file: every run reuses it, under a lane of its own.
    Sqlite(PathBuf),
    /// A Postgres server: every run gets a fresh schema.
    Postgres(String),
    /// A Valkey/Redis server or cluster: every run gets a fresh key prefix.
    Valkey(String),
}

/// One run's store, as the bench asks the opener for it.
#[derive(Debug, Clone, Copy)]
pub enum Store<'a> {
    /// The SQLite file at `path`, created when missing.
    Sqlite {
        path: &'a Path,
        synchronous: Synchronous,
    },
    /// A new `schema` on the Postgres server at `url`, dropped on close.
    PostgresSchema { url: &'a str, schema: &'a str },
    /// A new key `prefix` on the Valkey server or cluster at `url`, with
    /// `partitions` (the backend's default when `None`); its keys are
    /// deleted on close.
    ValkeyPrefix {
        url: &'a str,
        prefix: &'a str,
        partitions: Option<u32>,
    },
}

/// SQLite durability, for the backend and the ceiling alike: `full`
/// survives power loss, `normal` only a process crash. (The variants carry
/// no doc comments, which clap would print as help for each value.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Synchronous {
    Full,
    Normal,
}

impl Synchronous {
    /// SQLite's name of the level, as the report shows it.
    pub fn label(self) -> &'static str {
        match self {
            Synchronous::Full => "full",
            Synchronous::Normal => "normal",
        }
    }
}

/// Drains and releases a backend, removing a scratch schema or prefix.
type Close = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// An open backend, as the engine takes it, and how to close it.
pub struct Opened {
    pub engine: Arc<dyn EngineBackend>,
    pub completions: Arc<dyn CompletionBackend>,
    close: Close,
}

impl Opened {
    /// `close` runs once, from [`Opened::close`]: it must leave every
    /// acknowledged write durable and the store free for the next run.
    pub fn new(
        engine: Arc<dyn EngineBackend>,
        completions: Arc<dyn CompletionBackend>,
        close: impl FnOnce() -> BoxFuture<'static, ()> + Send + 'static,
    ) -> Self {
        Self {
            engine,
            completions,
            close: Box::new(close),
        }
    }

    /// Drains and releases the backend.
    pub async fn close(self) {
        (self.close)().await;
    }
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}
