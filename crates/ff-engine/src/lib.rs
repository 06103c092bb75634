//! FlowFabric's engine: the background services that keep executions moving
//! when no worker is looking — expiring dead leases, promoting scheduled
//! work, enforcing deadlines — and the listener that hears completions.
//!
//! # Layout
//! - [`supervisor`]: [`Engine::start`] spawns every service; [`Engine::shutdown`]
//!   stops and joins them. [`EngineConfig`] gathers their configurations.
//! - One module per service, each a shutdown-aware loop with a `Config` that
//!   has defaults and a `run` function:
//!   - [`lease_expiry`]: `MaintenanceOps::expire_leases`, every 200 ms.
//!   - [`scheduled_promoter`]: `MaintenanceOps::promote_scheduled`, every 100 ms.
//!   - [`deadline_scanner`]: `MaintenanceOps::expire_deadlines`, every second.
//!   - [`completion_listener`]: consumes `CompletionBackend::subscribe_completions`.
//! - [`shutdown`]: the trigger/signal pair every loop watches.
//! - [`stats`]: counters the services keep, read with [`Engine::stats`].

mod backoff;
pub mod completion_listener;
pub mod deadline_scanner;
pub mod lease_expiry;
mod scan;
pub mod scheduled_promoter;
pub mod shutdown;
pub mod stats;
pub mod supervisor;
#[cfg(test)]
mod test_support;

pub use stats::{EngineStats, StatsSnapshot};
pub use supervisor::{Engine, EngineConfig};
