//! The `signals` module: suspend, waitpoints, signals, suspension
//! timeouts and waitpoint tokens, every scenario named `signals::X`.
//!
//! - `suspend`: suspend, resume conditions, buffering, replays,
//!   idempotency, concurrency, cancel and flows, limits.
//! - `timeouts`: each timeout policy, deadlines, a due timeout against a
//!   late signal.
//! - `tokens`: forged, expired, retargeted and rotated tokens, and the same
//!   bytes on every backend.
//! - `support`: the helpers they share.

mod support;
mod suspend;
mod timeouts;
mod tokens;

pub use suspend::*;
pub use timeouts::*;
pub use tokens::*;
