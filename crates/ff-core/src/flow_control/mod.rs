//! Flow control decided at claim: the pure rules a backend applies inside
//! its claim step. Nothing here is wired to a backend yet.
//!
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
pub mod rate;
