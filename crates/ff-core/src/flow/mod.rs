//! Flows: DAGs of executions created atomically.
//!
//! - [`spec`]: what a caller asks for (nodes, edges, joins, conditions).
//! - [`validate`]: the checks a spec passes before it is stored (cycles named).
//! - [`record`]: what a backend stores, and the derived flow state.
//! - [`view`]: what reads return, and the list filter.
//!
//! Every item is re-exported here, so `ff_core::flow::X` names it.

pub mod record;
pub mod spec;
pub mod validate;
pub mod view;

pub use record::{FlowEdge, FlowNode, FlowRecord, FlowState, Inputs, NodeInput};
pub use spec::{spec_hash, EdgeCondition, EdgeSpec, FlowSpec, Join, NodeSpec};
pub use validate::{find_cycle, validate_graph, validate_quorums};
pub use view::{FlowCreated, FlowFilter, FlowSummary, FlowView, NodeView};
