//! The conformance suite against the in-memory reference backend.

use std::sync::Arc;

use ff_core::ManualClock;
use ff_testkit::reference::ReferenceBackend;
use ff_testkit::{BackendFactory, TestBackend};

struct Reference;

#[async_trait::async_trait]
impl BackendFactory for Reference {
    async fn open(&self, clock: ManualClock) -> TestBackend {
        let backend = ReferenceBackend::new(Arc::new(clock.clone()));
        TestBackend::new(Arc::new(backend), clock, ())
    }
}

ff_testkit::conformance_suite!(Reference);

/// The differential harness itself, reference against reference: it must
/// find no difference, and it exercises every generated operation.
#[tokio::test]
async fn differential_reference_against_itself() {
    ff_testkit::differential::run(&Reference).await;
}
