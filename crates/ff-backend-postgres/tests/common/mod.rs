//! Opening a Postgres backend per test: its own schema, dropped afterwards.

use std::sync::Arc;

use ff_backend_postgres::{PostgresBackend, PostgresConfig, ThrowawaySchema};
use ff_core::ManualClock;
use ff_testkit::{BackendFactory, TestBackend};

pub const URL_VAR: &str = "FF_TEST_POSTGRES_URL";

/// A fresh schema on the server named by `FF_TEST_POSTGRES_URL`.
pub struct Postgres;

#[async_trait::async_trait]
impl BackendFactory for Postgres {
    async fn open(&self, clock: ManualClock) -> TestBackend {
        let url = ff_testkit::harness::server_url(URL_VAR).expect("checked before the scenario");
        let schema = ThrowawaySchema::new(&url);
        let config = PostgresConfig::new(&url)
            .schema(schema.name())
            .max_connections(4)
            .clock(Arc::new(clock.clone()));
        let backend = PostgresBackend::connect(config).await.expect("connect");
        TestBackend::new(Arc::new(backend), clock, schema)
    }
}
