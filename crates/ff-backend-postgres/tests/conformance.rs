//! The conformance suite and the differential test against Postgres, each
//! test in its own schema. Skipped (loudly) without `FF_TEST_POSTGRES_URL`.

mod common;

use common::{Postgres, URL_VAR};

ff_testkit::conformance_suite!(Postgres, requires = "FF_TEST_POSTGRES_URL");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_against_reference() {
    if ff_testkit::harness::server_url(URL_VAR).is_some() {
        ff_testkit::differential::run(&Postgres).await;
    }
}
