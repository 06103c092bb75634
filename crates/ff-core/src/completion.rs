//! The completion subscription that drives DAG promotion.
//!
//! Every terminal transition writes an outbox entry in the same atomic step
//! as the transition; the backend then signals it. [`CompletionBackend`] is
//! the read side: a best-effort stream of those entries. Delivery through the
//! stream is not promised — the engine's dependency reconciler reads the
//! durable outbox and is the guarantee — so no correctness may depend on it.
//!
//! The stream yields payloads, not results, until it is dropped; backends
//! reconnect and resubscribe on their own. There is deliberately no
//! `publish_completion`: only the backend's commit path publishes, so a
//! completion is never announced for a transition that did not commit.

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::EngineError;
use crate::execution::Execution;
use crate::ids::{ExecutionId, FlowId};
use crate::state::Outcome;

/// One terminal transition, as recorded in the outbox.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionPayload {
    pub execution_id: ExecutionId,
    pub namespace: String,
    pub flow_id: Option<FlowId>,
    pub node_key: Option<String>,
    pub outcome: Outcome,
    pub attempt: u32,
    /// When the transition committed, by the backend's clock.
    pub committed_at: Millis,
    /// Outbox partition (0 on SQLite and Postgres).
    pub partition: u32,
    /// Outbox position: unique and increasing within the partition.
    pub seq: u64,
}

impl CompletionPayload {
    /// The entry for `exec`, which has just become terminal.
    pub fn for_execution(
        exec: &Execution,
        committed_at: Millis,
        partition: u32,
        seq: u64,
    ) -> Option<Self> {
        Some(Self {
            execution_id: exec.id,
            namespace: exec.namespace.clone(),
            flow_id: exec.flow.as_ref().map(|f| f.flow_id),
            node_key: exec.flow.as_ref().map(|f| f.node_key.clone()),
            outcome: exec.outcome()?,
            attempt: exec.attempt,
            committed_at,
            partition,
            seq,
        })
    }
}

/// A backend-agnostic stream of completion events. Boxed because the concrete
/// stream is backend-specific; `Unpin` keeps `.next().await` ergonomic; `Send`
/// so any tokio task can own it.
pub type CompletionStream = Pin<Box<dyn Stream<Item = CompletionPayload> + Send + Unpin>>;

/// Backend surface for subscribing to completion events. The wire channel is
/// a backend detail and never appears here.
#[async_trait]
pub trait CompletionBackend: Send + Sync + 'static {
    /// Each call opens an independent subscription; dropping the stream ends it.
    /// Errors only for setup failures; the backend reconnects on its own after.
    async fn subscribe_completions(&self) -> Result<CompletionStream, EngineError>;
}

/// Compiles only while `CompletionBackend` stays dyn-compatible, so a change
/// that breaks `Arc<dyn CompletionBackend>` fails here, not at every user.
fn _assert_dyn_compatible(_: &dyn CompletionBackend) {}
