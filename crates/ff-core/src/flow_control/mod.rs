//! Flow control decided at claim: the pure rules a backend applies inside
//! its claim step.
//!
//! - [`policy`]: the named, versioned policies of a namespace and the set
//!   of them a claim consults.
//! - [`gate`]: the admission of one candidate: budget, concurrency, rate.
//! - [`select`]: a claim's picks across lanes, fair-share lanes by weight.
//! - [`rate`]: a token bucket in exact integer arithmetic, so every
//!   backend (Lua included) computes the same next-token time.
//! - [`concurrency`]: concurrency policies by exact key or key prefix, and
//!   which limit applies to a key.
//! - [`fairness`]: smooth weighted round-robin across fairness keys.
//! - [`budget`]: usage reported against a scope's soft and hard limits,
//!   idempotent per report key, starting over each reset interval.

pub mod budget;
pub mod concurrency;
pub mod fairness;
pub mod gate;
pub mod passed;
pub mod policy;
pub mod rate;
pub mod select;

pub use budget::{BudgetPolicy, BudgetStatus, DimensionLimit, Standing, Usage, UsageReport};
pub use concurrency::{ConcurrencyPolicy, KeyPattern};
pub use fairness::Credits;
pub use gate::{ClaimGate, Held, HeldKeys, LimitedKeys};
pub use passed::{PassedOver, PassedOverCounts};
pub use policy::{FairSharePolicy, Policy, PolicySet, PolicySpec, RateLimitPolicy};
pub use rate::{Bucket, RatePolicy};
pub use select::{fair_fetch, select, LaneSource};
