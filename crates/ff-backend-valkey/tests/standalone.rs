//! The conformance suite and the differential test against one Redis /
//! Valkey server, each test under its own key prefix. Skipped (loudly)
//! without `FF_TEST_REDIS_URL`.

mod common;

use common::{Valkey, STANDALONE_VAR};

const STANDALONE: Valkey = Valkey {
    var: STANDALONE_VAR,
    partitions: 1,
};

ff_testkit::conformance_suite!(STANDALONE, requires = "FF_TEST_REDIS_URL");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_against_reference() {
    if ff_testkit::harness::server_url(STANDALONE_VAR).is_some() {
        ff_testkit::differential::run(&STANDALONE).await;
    }
}
