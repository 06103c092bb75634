//! FlowFabric's test kit: the conformance suite every backend passes, the
//! in-memory reference backend, and the differential test that holds a real
//! backend to it.
//!
//! # Layout
//! - [`conformance`]: one module per area, one `async fn` per scenario;
//!   [`conformance_suite!`] expands them into `#[tokio::test]`s.
//! - [`reference`]: [`ReferenceBackend`](reference::ReferenceBackend), the oracle.
//! - [`differential`]: randomized operation sequences run on the reference
//!   and a real backend, full snapshots compared after every step.
//! - [`faults`]: fault wrappers — a completion stream that drops events, a
//!   backend that crashes after its k-th write.
//! - [`harness`]: [`BackendFactory`], [`TestBackend`], [`TempDir`].

pub mod conformance;
pub mod differential;
pub mod faults;
pub mod harness;
pub mod reference;

pub use harness::{BackendFactory, TempDir, TestBackend};
