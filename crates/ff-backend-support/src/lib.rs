//! What FlowFabric's backends share beyond `ff-core`'s rules: the pieces
//! that need an async runtime, which `ff-core` (no I/O) does not have.
//!
//! - [`CompletionBroadcast`]: the in-process fan-out behind every
//!   `subscribe_completions` stream.
//! - [`WorkSignal`] and [`claim_wait`]: "work may be claimable now", and
//!   the waiting claim built on it.
//! - [`OffsetClock`]: the process clock corrected to a server's.
//! - [`block_on_own_thread`]: async cleanup from a `Drop` (throwaway schemas
//!   and prefixes of tests and benchmarks).
//!
//! Backends depend on this crate and `ff-core` only; nothing here names a
//! backend.

mod broadcast;
mod claim_wait;
mod detached;
mod offset_clock;

pub use broadcast::CompletionBroadcast;
pub use claim_wait::{claim_wait, WorkSignal};
pub use detached::block_on_own_thread;
pub use offset_clock::OffsetClock;
