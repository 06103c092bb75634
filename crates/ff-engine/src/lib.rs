//! FlowFabric's engine: the background services that keep executions moving
//! when no worker is looking — expiring dead leases, promoting scheduled
//! work, enforcing deadlines — and the completion pipeline that promotes
//! flow nodes as their parents finish.
//!
//! # The completion pipeline
//! Every terminal transition commits an outbox entry with it. The
//! [`completion_listener`] hears entries on the backend's best-effort stream
//! and cascades each at once (`FlowOps::cascade_completions`), so a child is
//! claimable milliseconds after its parent's commit. The
//! [`dependency_reconciler`] reads the durable outbox and is the guarantee:
//! whatever the stream missed is cascaded one interval after a grace period.
//! A cascade claims its entry atomically, so the two never double-apply.
//! The [`outbox_trim`] deletes dispatched entries once old. The time from a
//! parent's commit to its children's promotion is kept in a histogram
//! ([`lag`]).
//!
//! # Layout
//! - [`supervisor`]: [`Engine::start`] spawns every service; [`Engine::shutdown`]
//!   stops and joins them. [`EngineConfig`] gathers their configurations.
//! - One module per service, each a shutdown-aware loop with a `Config` that
//!   has defaults and a `run` function:
//!   - [`lease_expiry`]: `MaintenanceOps::expire_leases`, every 200 ms.
//!   - [`scheduled_promoter`]: `MaintenanceOps::promote_scheduled`, every 100 ms.
//!   - [`deadline_scanner`]: `MaintenanceOps::expire_deadlines`, every second.
//!   - [`suspension_timeout`]: `MaintenanceOps::expire_suspensions`, every second.
//!   - [`completion_listener`]: cascades each payload of
//!     `CompletionBackend::subscribe_completions`, those waiting together in
//!     one call, 128 calls at a time.
//!   - [`dependency_reconciler`]: cascades undispatched outbox entries older
//!     than 2 s and decides stuck blocked nodes, every second.
//!   - [`outbox_trim`]: `MaintenanceOps::trim_outbox`, dispatched entries
//!     older than 10 min, every 30 s.
//! - `cascade`: cascades and their bookkeeping, shared by the listener and
//!   the reconciler.
//! - [`shutdown`]: the trigger/signal pair every loop watches.
//! - [`stats`]: counters the services keep, read with [`Engine::stats`] or
//!   shared live with [`Engine::stats_handle`].
//! - [`lag`]: the promotion-lag histogram, with its bucket bounds for
//!   exporters and p50/p99 helpers.
//! - [`Instrumented`]: the backend wrapper that traces every call.

mod backoff;
mod cascade;
pub mod completion_listener;
pub mod deadline_scanner;
pub mod dependency_reconciler;
mod instrumented;
pub mod lag;
pub mod lease_expiry;
pub mod outbox_trim;
mod scan;
pub mod scheduled_promoter;
pub mod shutdown;
pub mod stats;
pub mod supervisor;
pub mod suspension_timeout;
#[cfg(test)]
mod test_support;

pub use instrumented::Instrumented;
pub use lag::{LagSnapshot, LAG_BOUNDS_MS};
pub use stats::{EngineStats, StatsSnapshot};
pub use supervisor::{Engine, EngineConfig};
