//! How to open the SQLite backend.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ff_core::{Limits, SharedClock, SystemClock};

/// How durable an acknowledged write is (SQLite's `synchronous` levels for
/// a WAL database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every group commit is fsynced before any of its callers is answered:
    /// an acknowledged write survives power loss.
    #[default]
    Full,
    /// Commits are answered without an fsync: durable against a process
    /// crash, not a power loss (the last transactions before an OS crash may
    /// be lost; the file stays consistent). Faster on slow disks.
    Normal,
}

/// Settings of [`crate::SqliteBackend::open`].
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The database file; its directory is created when missing.
    pub path: PathBuf,
    pub synchronous: Synchronous,
    pub limits: Limits,
    /// Decides every stored time; tests pass a manual clock.
    pub clock: SharedClock,
    /// Read-only connections serving reads (default 4).
    pub read_pool_size: usize,
    /// Queued commands taken into one transaction at most (default 512);
    /// cascades, which go ahead of the queue, can take a group to twice that.
    pub max_group_commit: usize,
    /// A group transaction holding a flow member's completion, or a cascade,
    /// takes no further commands once it has run this long (default 2 ms),
    /// so children are not held back by a long group. Other groups run to
    /// `max_group_commit`: fewer, larger commits cost less.
    pub max_group_duration: Duration,
}

impl SqliteConfig {
    /// Defaults for the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            synchronous: Synchronous::default(),
            limits: Limits::default(),
            clock: Arc::new(SystemClock),
            read_pool_size: 4,
            max_group_commit: 512,
            max_group_duration: Duration::from_millis(2),
        }
    }

    /// `./.flowfabric/ff.db`, the embedded default.
    pub fn default_path() -> PathBuf {
        PathBuf::from(".").join(".flowfabric").join("ff.db")
    }

    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn read_pool_size(mut self, size: usize) -> Self {
        self.read_pool_size = size;
        self
    }

    pub fn max_group_commit(mut self, commands: usize) -> Self {
        self.max_group_commit = commands;
        self
    }

    pub fn max_group_duration(mut self, duration: Duration) -> Self {
        self.max_group_duration = duration;
        self
    }
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self::new(Self::default_path())
    }
}
