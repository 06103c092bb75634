//! Opening a Postgres backend per test: its own schema, dropped afterwards.

use std::sync::Arc;

use ff_backend_postgres::{PostgresBackend, PostgresConfig};
use ff_core::ManualClock;
use ff_testkit::{BackendFactory, TestBackend};

pub const URL_VAR: &str = "FF_TEST_POSTGRES_URL";

/// A fresh schema on the server named by `FF_TEST_POSTGRES_URL`.
pub struct Postgres;

#[async_trait::async_trait]
impl BackendFactory for Postgres {
    async fn open(&self, clock: ManualClock) -> TestBackend {
        let url = ff_testkit::harness::server_url(URL_VAR).expect("checked before the scenario");
        let schema = SchemaGuard::new(&url);
        let config = PostgresConfig::new(&url)
            .schema(&schema.schema)
            .max_connections(4)
            .clock(Arc::new(clock.clone()));
        let backend = PostgresBackend::connect(config).await.expect("connect");
        TestBackend::new(Arc::new(backend), clock, schema)
    }
}

/// Drops its schema when dropped, so a test leaves nothing behind.
#[derive(Debug)]
pub struct SchemaGuard {
    url: String,
    pub schema: String,
}

impl SchemaGuard {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            schema: format!("ff_test_{}", uuid::Uuid::now_v7().simple()),
        }
    }
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // Drop runs inside the test's runtime, which cannot block on a
        // future: a thread with its own runtime does the work.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let pool = ff_backend_postgres::pool(&url, "public", 1).await?;
                ff_backend_postgres::drop_schema(&pool, &schema).await?;
                pool.close().await;
                Ok::<_, ff_core::EngineError>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}: {dropped:?}", self.schema);
        }
    }
}
