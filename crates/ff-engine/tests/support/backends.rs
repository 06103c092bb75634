//! The backends every engine test runs on, and [`for_each_backend!`], which
//! expands one scenario body into one `#[tokio::test]` per backend.

use std::sync::Arc;

use ff_backend_postgres::{PostgresBackend, PostgresConfig, ThrowawaySchema};
use ff_backend_sqlite::{SqliteBackend, SqliteConfig};
use ff_backend_valkey::{ThrowawayPrefix, ValkeyBackend, ValkeyConfig};
use ff_core::{CompletionBackend, EngineBackend, SharedClock, SystemClock};
use ff_testkit::reference::ReferenceBackend;
use ff_testkit::TempDir;

/// Expands each named scenario, an `async fn name(kind: Kind)` of the test
/// file, into one `#[tokio::test]` per backend, in a module named after the
/// backend: `reference::name`, `sqlite::name`, `postgres::name`,
/// `valkey::name`, `valkey_cluster::name`. So a failure names its scenario
/// and backend, and `--list` shows every pair. A server backend's test
/// skips, loudly, when its URL variable is unset ([`Store::new`]).
macro_rules! for_each_backend {
    ($($scenario:ident),+ $(,)?) => {
        $crate::support::backend_tests!(reference, Reference; $($scenario),+);
        $crate::support::backend_tests!(sqlite, Sqlite; $($scenario),+);
        $crate::support::backend_tests!(postgres, Postgres; $($scenario),+);
        $crate::support::backend_tests!(valkey, Valkey; $($scenario),+);
        $crate::support::backend_tests!(valkey_cluster, ValkeyCluster; $($scenario),+);
    };
}

/// One backend's module of [`for_each_backend!`].
macro_rules! backend_tests {
    ($module:ident, $kind:ident; $($scenario:ident),+) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::support::Kind::$kind).await;
                }
            )+
        }
    };
}

pub(crate) use {backend_tests, for_each_backend};

/// The URL variables of the server backends.
const POSTGRES_VAR: &str = "FF_TEST_POSTGRES_URL";
const STANDALONE_VAR: &str = "FF_TEST_REDIS_URL";
const CLUSTER_VAR: &str = "FF_TEST_REDIS_CLUSTER_URL";

/// Partitions on the cluster: more than one, so a flow's executions spread
/// over the cluster's slots as they do in production. The standalone server
/// takes the default.
const CLUSTER_PARTITIONS: u32 = 3;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Reference,
    Sqlite,
    Postgres,
    Valkey,
    ValkeyCluster,
}

/// Where a test's state lives: in memory, SQLite in a temporary directory,
/// a Postgres schema or a Valkey key prefix of its own. It outlives every
/// opening, so it can be opened again after a crash.
pub struct Store {
    /// `None`: each backend's own default clock (the server's `TIME` on
    /// Valkey), as in production.
    clock: Option<SharedClock>,
    place: Place,
}

enum Place {
    /// The in-memory state itself: "reopening" it is what a restart on
    /// durable storage looks like.
    Reference(ReferenceBackend),
    Sqlite(TempDir),
    Postgres(String, ThrowawaySchema),
    Valkey {
        url: String,
        prefix: ThrowawayPrefix,
        partitions: Option<u32>,
    },
}

/// One opening of a [`Store`].
#[derive(Clone)]
pub enum Opened {
    Reference(Arc<ReferenceBackend>),
    Sqlite(Arc<SqliteBackend>),
    Postgres(Arc<PostgresBackend>),
    Valkey(Arc<ValkeyBackend>),
}

impl Store {
    /// A fresh store on each backend's own clock, or `None` (the test
    /// skips, loudly) for a server backend whose URL variable is unset.
    pub fn new(kind: Kind) -> Option<Self> {
        Self::on(kind, None)
    }

    /// A fresh store whose every opening runs on `clock`.
    pub fn with_clock(kind: Kind, clock: SharedClock) -> Option<Self> {
        Self::on(kind, Some(clock))
    }

    fn on(kind: Kind, clock: Option<SharedClock>) -> Option<Self> {
        let place = match kind {
            Kind::Reference => {
                let clock = clock.clone().unwrap_or_else(|| Arc::new(SystemClock));
                Place::Reference(ReferenceBackend::new(clock))
            }
            Kind::Sqlite => Place::Sqlite(TempDir::new("engine")),
            Kind::Postgres => {
                let url = ff_testkit::harness::server_url(POSTGRES_VAR)?;
                let schema = ThrowawaySchema::new(&url);
                Place::Postgres(url, schema)
            }
            Kind::Valkey => valkey(STANDALONE_VAR, None)?,
            Kind::ValkeyCluster => valkey(CLUSTER_VAR, Some(CLUSTER_PARTITIONS))?,
        };
        Some(Self { clock, place })
    }

    pub async fn open(&self) -> Opened {
        let clock = self.clock.clone();
        match &self.place {
            Place::Reference(backend) => Opened::Reference(Arc::new(backend.clone())),
            Place::Sqlite(dir) => {
                let mut config = SqliteConfig::new(dir.path().join("ff.db"));
                if let Some(clock) = clock {
                    config = config.clock(clock);
                }
                Opened::Sqlite(Arc::new(
                    SqliteBackend::open(config).await.expect("open SQLite"),
                ))
            }
            Place::Postgres(url, schema) => {
                let mut config = PostgresConfig::new(url)
                    .schema(schema.name())
                    .max_connections(4);
                if let Some(clock) = clock {
                    config = config.clock(clock);
                }
                Opened::Postgres(Arc::new(
                    PostgresBackend::connect(config).await.expect("connect"),
                ))
            }
            Place::Valkey {
                url,
                prefix,
                partitions,
            } => {
                let mut config = ValkeyConfig::new(url).prefix(prefix.name());
                if let Some(partitions) = *partitions {
                    config = config.partitions(partitions);
                }
                if let Some(clock) = clock {
                    config = config.clock(clock);
                }
                Opened::Valkey(Arc::new(
                    ValkeyBackend::connect(config).await.expect("connect"),
                ))
            }
        }
    }
}

fn valkey(var: &str, partitions: Option<u32>) -> Option<Place> {
    let url = ff_testkit::harness::server_url(var)?;
    let prefix = ThrowawayPrefix::new(&url);
    Some(Place::Valkey {
        url,
        prefix,
        partitions,
    })
}

impl Opened {
    pub fn engine(&self) -> Arc<dyn EngineBackend> {
        match self {
            Self::Reference(b) => b.clone(),
            Self::Sqlite(b) => b.clone(),
            Self::Postgres(b) => b.clone(),
            Self::Valkey(b) => b.clone(),
        }
    }

    pub fn completions(&self) -> Arc<dyn CompletionBackend> {
        match self {
            Self::Reference(b) => b.clone(),
            Self::Sqlite(b) => b.clone(),
            Self::Postgres(b) => b.clone(),
            Self::Valkey(b) => b.clone(),
        }
    }

    pub async fn close(&self) {
        match self {
            // Nothing to release: the state lives on in the store.
            Self::Reference(_) => {}
            Self::Sqlite(b) => b.close().await,
            Self::Postgres(b) => b.close().await,
            Self::Valkey(b) => b.close().await,
        }
    }
}
