//! Opening a Valkey backend per test: its own key prefix, deleted
//! afterwards.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::sync::Arc;

use ff_backend_valkey::{ThrowawayPrefix, ValkeyBackend, ValkeyConfig};
use ff_core::ManualClock;
use ff_testkit::{BackendFactory, TestBackend};

pub const STANDALONE_VAR: &str = "FF_TEST_REDIS_URL";
pub const CLUSTER_VAR: &str = "FF_TEST_REDIS_CLUSTER_URL";

/// Scenarios that check an order across executions (claim order, outbox
/// order), which holds per partition: they run with one partition.
const ORDERING: &[&str] = &[
    "priority_then_fifo_order",
    "claim_spans_lanes_in_order",
    "retry_goes_to_back_of_lane",
    "completion_recorded_for_every_terminal_transition",
    "list_filters_and_paginates",
    "priority_within_fairness_key",
    "limited_execution_does_not_block_lane",
];

/// A fresh prefix on the server named by `var`, with `partitions`.
pub struct Valkey {
    pub var: &'static str,
    pub partitions: u32,
}

impl Valkey {
    pub async fn open_with(&self, clock: ManualClock, partitions: u32) -> TestBackend {
        let url = ff_testkit::harness::server_url(self.var).expect("checked before the scenario");
        let prefix = ThrowawayPrefix::new(&url);
        let config = ValkeyConfig::new(&url)
            .prefix(prefix.name())
            .partitions(partitions)
            .clock(Arc::new(clock.clone()));
        let backend = ValkeyBackend::connect(config).await.expect("connect");
        TestBackend::new(Arc::new(backend), clock, prefix)
    }
}

#[async_trait::async_trait]
impl BackendFactory for Valkey {
    async fn open(&self, clock: ManualClock) -> TestBackend {
        self.open_with(clock, self.partitions).await
    }

    async fn open_for(&self, clock: ManualClock, scenario: &str) -> TestBackend {
        let partitions = if ORDERING.contains(&scenario) {
            1
        } else {
            self.partitions
        };
        self.open_with(clock, partitions).await
    }
}
