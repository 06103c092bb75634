//! Flow control at claim: concurrency keys, rate limits, budgets, fair
//! shares and the policies behind them, the same on every backend.

pub mod budget;
pub mod concurrency;
pub mod fairness;
pub mod policies;
pub mod rate;

mod support;

pub use budget::*;
pub use concurrency::*;
pub use fairness::*;
pub use policies::*;
pub use rate::*;
