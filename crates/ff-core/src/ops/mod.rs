//! The backend traits. [`EngineBackend`] is the write surface and the reads,
//! the supertrait of one focused trait per entity. A backend implements the
//! storage side, [`ExecutionStore`] and [`FlowCommands`], and gets
//! [`ExecutionOps`], [`LeaseOps`] and [`FlowOps`] from it, and
//! [`SignalStore`] for [`SignalOps`], [`FlowControlStore`] for
//! [`FlowControlOps`]; `wrapper` holds
//! [`BackendWrapper`] and the `wrap_backend!` macro for types that stand in
//! front of a backend.

mod execution_ops;
mod execution_store;
mod flow_commands;
mod flow_control_ops;
mod flow_ops;
mod lease_ops;
mod maintenance_ops;
mod read_ops;
mod signal_ops;
mod wrapper;

pub use execution_ops::ExecutionOps;
pub use execution_store::{ExecutionStore, Rule, Valid};
pub use flow_commands::{FlowCommand, FlowCommands, FlowScope};
pub use flow_control_ops::{FlowControlOps, FlowControlStore};
pub use flow_ops::FlowOps;
pub use lease_ops::LeaseOps;
pub use maintenance_ops::MaintenanceOps;
pub use read_ops::ReadOps;
pub use signal_ops::{SignalOps, SignalStore};
pub use wrapper::{BackendWrapper, Call};

#[doc(hidden)]
pub use async_trait::async_trait as __async_trait;

/// Everything a backend implements; held as `Arc<dyn EngineBackend>` beside
/// an `Arc<dyn CompletionBackend>`.
pub trait EngineBackend:
    ExecutionOps
    + LeaseOps
    + FlowOps
    + SignalOps
    + FlowControlOps
    + MaintenanceOps
    + ReadOps
    + std::fmt::Debug
    + 'static
{
}

impl<T> EngineBackend for T where
    T: ExecutionOps
        + LeaseOps
        + FlowOps
        + SignalOps
        + FlowControlOps
        + MaintenanceOps
        + ReadOps
        + std::fmt::Debug
        + 'static
{
}

fn _assert_dyn_compatible(_: &dyn EngineBackend) {}
