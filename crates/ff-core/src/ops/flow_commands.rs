//! `FlowCommands`: what a backend gives the flow algorithms. [`FlowOps`]
//! follows from it here, once for every backend: a flow spec is checked
//! against the limits before a backend sees it, and creating, growing and
//! cancelling a flow are each one `cascade` algorithm run atomically by
//! [`FlowCommands::flow_command`].

use async_trait::async_trait;

use crate::cascade::{self, CascadeReport, FlowCancelResponse, FlowStore, NodesAdded};
use crate::clock::Millis;
use crate::completion::CompletionPayload;
use crate::error::EngineError;
use crate::flow::{EdgeSpec, FlowCreated, FlowSpec, NodeSpec};
use crate::ids::{ExecutionId, FlowId};
use crate::lease::LeaseHandle;

use super::{ExecutionStore, FlowOps};

/// What a flow command works on, so a backend can lock it first (Postgres)
/// or send the command to the partition that holds it (Valkey).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowScope {
    /// A flow about to be created in `namespace`, under its idempotency key
    /// when it has one.
    New {
        namespace: String,
        idempotency_key: Option<String>,
        /// Whether a node carries a flow-control key (a partitioned store
        /// keeps such a flow beside the namespace's other limited work).
        flow_controlled: bool,
    },
    /// The flow a running execution belongs to (dynamic fan-out).
    OfExecution(ExecutionId),
    /// One existing flow.
    Flow(FlowId),
}

/// A command [`FlowCommands::flow_command`] runs over the store at `now`.
pub trait FlowCommand<T>:
    Fn(&mut dyn FlowStore, Millis) -> Result<T, EngineError> + Send + Sync + 'static
{
}

impl<T, F> FlowCommand<T> for F where
    F: Fn(&mut dyn FlowStore, Millis) -> Result<T, EngineError> + Send + Sync + 'static
{
}

/// The storage side of the flow operations. Implementing it gives a
/// backend [`FlowOps`].
#[async_trait]
pub trait FlowCommands: ExecutionStore {
    /// Runs `command` over this store's [`FlowStore`] as one atomic step,
    /// with the store's `now`, after taking what `scope` needs. A store may
    /// run the command again on fresher data when a concurrent writer got
    /// there first; only the last run counts.
    async fn flow_command<T: Send + 'static, C: FlowCommand<T>>(
        &self,
        scope: FlowScope,
        command: C,
    ) -> Result<T, EngineError>;

    /// Cascades one completion (`FlowOps::cascade_completion`).
    async fn cascade_one(&self, payload: &CompletionPayload) -> Result<CascadeReport, EngineError>;

    /// Cascades several, each its own atomic step
    /// (`FlowOps::cascade_completions`); by default each on its own,
    /// concurrently.
    async fn cascade_many(
        &self,
        payloads: &[CompletionPayload],
    ) -> Result<Vec<Result<CascadeReport, EngineError>>, EngineError> {
        Ok(futures::future::join_all(payloads.iter().map(|p| self.cascade_one(p))).await)
    }
}

#[async_trait]
impl<S: FlowCommands> FlowOps for S {
    async fn create_flow(&self, spec: FlowSpec) -> Result<FlowCreated, EngineError> {
        spec.validate(self.limits())?;
        let scope = FlowScope::New {
            namespace: spec.resolved_namespace().to_owned(),
            idempotency_key: spec.idempotency_key.clone(),
            flow_controlled: spec
                .nodes
                .iter()
                .any(|n| n.execution.has_flow_control_keys()),
        };
        let limits = self.limits().clone();
        self.flow_command(scope, move |txn, now| {
            cascade::create_flow(txn, spec.clone(), &limits, now)
        })
        .await
    }

    async fn add_nodes(
        &self,
        handle: &LeaseHandle,
        nodes: Vec<NodeSpec>,
        edges: Vec<EdgeSpec>,
    ) -> Result<NodesAdded, EngineError> {
        let scope = FlowScope::OfExecution(handle.execution_id);
        let limits = self.limits().clone();
        let handle = handle.clone();
        self.flow_command(scope, move |txn, now| {
            cascade::add_nodes(txn, &handle, nodes.clone(), edges.clone(), &limits, now)
        })
        .await?
    }

    async fn cancel_flow(&self, id: FlowId) -> Result<FlowCancelResponse, EngineError> {
        self.flow_command(FlowScope::Flow(id), move |txn, now| {
            cascade::cancel_flow(txn, id, now)
        })
        .await
    }

    async fn cascade_completion(
        &self,
        payload: &CompletionPayload,
    ) -> Result<CascadeReport, EngineError> {
        self.cascade_one(payload).await
    }

    async fn cascade_completions(
        &self,
        payloads: &[CompletionPayload],
    ) -> Result<Vec<Result<CascadeReport, EngineError>>, EngineError> {
        self.cascade_many(payloads).await
    }
}
