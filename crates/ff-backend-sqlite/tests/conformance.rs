//! The conformance suite and the differential test against the SQLite backend.

use std::sync::Arc;

use ff_backend_sqlite::{SqliteBackend, SqliteConfig};
use ff_core::ManualClock;
use ff_testkit::{BackendFactory, TempDir, TestBackend};

struct Sqlite;

#[async_trait::async_trait]
impl BackendFactory for Sqlite {
    async fn open(&self, clock: ManualClock) -> TestBackend {
        let dir = TempDir::new("sqlite");
        let config = SqliteConfig::new(dir.path().join("ff.db")).clock(Arc::new(clock.clone()));
        let backend = SqliteBackend::open(config).await.expect("open");
        TestBackend::new(Arc::new(backend), clock, dir)
    }
}

ff_testkit::conformance_suite!(Sqlite);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_against_reference() {
    ff_testkit::differential::run(&Sqlite).await;
}
