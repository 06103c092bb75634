//! The conformance suite against a Redis Cluster with three partitions (one
//! for the scenarios that check an order across executions), and the
//! differential test, which compares claim order step by step, with one;
//! each test under its own key prefix. Skipped (loudly) without
//! `FF_TEST_REDIS_CLUSTER_URL`.

mod common;

use common::{Valkey, CLUSTER_VAR};

const CLUSTER: Valkey = Valkey {
    var: CLUSTER_VAR,
    partitions: 3,
};

ff_testkit::conformance_suite!(CLUSTER, requires = "FF_TEST_REDIS_CLUSTER_URL");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_against_reference() {
    if ff_testkit::harness::server_url(CLUSTER_VAR).is_some() {
        let one_partition = Valkey {
            var: CLUSTER_VAR,
            partitions: 1,
        };
        ff_testkit::differential::run(&one_partition).await;
    }
}
