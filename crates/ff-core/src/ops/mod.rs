//! The backend traits. [`EngineBackend`] is the write surface and the reads,
//! the supertrait of one focused trait per entity.

mod execution_ops;
mod flow_ops;
mod lease_ops;
mod maintenance_ops;
mod read_ops;

pub use execution_ops::ExecutionOps;
pub use flow_ops::FlowOps;
pub use lease_ops::LeaseOps;
pub use maintenance_ops::MaintenanceOps;
pub use read_ops::ReadOps;

/// Everything a backend implements; held as `Arc<dyn EngineBackend>` beside
/// an `Arc<dyn CompletionBackend>`.
pub trait EngineBackend:
    ExecutionOps + LeaseOps + FlowOps + MaintenanceOps + ReadOps + std::fmt::Debug + 'static
{
}

impl<T> EngineBackend for T where
    T: ExecutionOps + LeaseOps + FlowOps + MaintenanceOps + ReadOps + std::fmt::Debug + 'static
{
}

fn _assert_dyn_compatible(_: &dyn EngineBackend) {}
