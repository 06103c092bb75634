//! The conformance suite and the differential test against Valkey, as
//! `valkey::*` on one Redis / Valkey server (`FF_TEST_REDIS_URL`) and as
//! `valkey_cluster::*` on a Redis Cluster (`FF_TEST_REDIS_CLUSTER_URL`),
//! each test under its own key prefix. A test whose variable is unset is
//! skipped, loudly.

mod common;

mod valkey {
    use super::common::{Valkey, STANDALONE_VAR};

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
}

/// Three partitions, except for the scenarios that check an order across
/// executions (one), and for the differential test, which compares claim
/// order step by step (one).
mod valkey_cluster {
    use super::common::{Valkey, CLUSTER_VAR};

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
}
