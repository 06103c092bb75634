//! "Why is this not running?": what holds an execution now, from its
//! record, its flow and its place in its lane. Written once over
//! [`ReadOps`], so the server and the embedded SDK answer alike.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::EngineError;
use crate::execution::Execution;
use crate::flow::FlowView;
use crate::flow_control::Held;
use crate::ids::ExecutionId;
use crate::ops::{FlowControlOps, ReadOps};
use crate::state::{Outcome, State};
use crate::suspension::ResumeCondition;

/// What holds an execution, by its state.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Holding {
    /// Not claimable before its `run_at`.
    RunAt { at: Millis },
    /// Waiting out the backoff after attempt `attempt` failed.
    RetryBackoff { at: Millis, attempt: u32 },
    /// A flow node whose parents (by node key) have not all finished.
    Parents { waiting_on: Vec<String> },
    /// Suspended until signals to its waitpoints meet the condition.
    Suspended {
        waitpoints: Vec<String>,
        condition: ResumeCondition,
        timeout_at: Option<Millis>,
    },
    /// Claimable, but a flow-control policy passes it over for now.
    Limited { held: Held },
    /// Claimable: roughly `ahead` executions of its lane go first, and a
    /// worker must advertise `capabilities`.
    Queued {
        ahead: u64,
        capabilities: Vec<String>,
    },
    /// A worker holds it.
    Running {
        worker_id: Option<String>,
        lease_until: Option<Millis>,
    },
    /// It has ended.
    Finished { outcome: Outcome },
}

/// The answer to "why is this not running?".
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub id: ExecutionId,
    pub state: State,
    pub holding: Holding,
}

/// What holds `exec`: its `flow` is read for a blocked node, `held` (see
/// [`FlowControlOps::held`]) and `ahead` (see [`ReadOps::count_ahead`]) for
/// a claimable one.
pub fn explain(
    exec: &Execution,
    flow: Option<&FlowView>,
    held: Option<Held>,
    ahead: u64,
) -> Explanation {
    let holding = match (exec.state, held) {
        (State::Ready, Some(held)) => Holding::Limited { held },
        (state, _) => explain_state(exec, state, flow, ahead),
    };
    Explanation {
        id: exec.id,
        state: exec.state,
        holding,
    }
}

fn explain_state(exec: &Execution, state: State, flow: Option<&FlowView>, ahead: u64) -> Holding {
    match state {
        State::Blocked => Holding::Parents {
            waiting_on: unfinished_parents(exec, flow),
        },
        State::Scheduled if exec.attempts.is_empty() => Holding::RunAt { at: exec.ready_at },
        State::Scheduled => Holding::RetryBackoff {
            at: exec.ready_at,
            attempt: exec.attempt,
        },
        State::Ready => Holding::Queued {
            ahead,
            capabilities: exec.capabilities.clone(),
        },
        State::Running => Holding::Running {
            worker_id: exec.worker_id.clone(),
            lease_until: exec.lease_until,
        },
        State::Suspended => {
            let current = exec.wait.as_ref().and_then(|w| w.current());
            Holding::Suspended {
                waitpoints: current.map(|s| s.waitpoints.clone()).unwrap_or_default(),
                condition: current.map_or(ResumeCondition::Any, |s| s.condition),
                timeout_at: current.and_then(|s| s.timeout_at),
            }
        }
        State::Completed | State::Failed | State::Cancelled | State::Skipped => Holding::Finished {
            outcome: exec.outcome().unwrap_or(Outcome::Completed),
        },
    }
}

/// The parents of `exec`'s node that have not finished, by node key.
fn unfinished_parents(exec: &Execution, flow: Option<&FlowView>) -> Vec<String> {
    let (Some(member), Some(flow)) = (&exec.flow, flow) else {
        return Vec::new();
    };
    flow.edges
        .iter()
        .filter(|edge| edge.to == member.node_key)
        .filter(|edge| {
            flow.nodes
                .iter()
                .find(|node| node.key == edge.from)
                .is_some_and(|node| !node.state.is_terminal())
        })
        .map(|edge| edge.from.clone())
        .collect()
}

/// Reads what [`explain`] needs and answers for execution `id` of
/// `namespace` (another namespace's is `NotFound`).
pub async fn why<R: ReadOps + FlowControlOps + ?Sized>(
    reads: &R,
    namespace: &str,
    id: ExecutionId,
) -> Result<Explanation, EngineError> {
    let exec = reads.get_execution(id).await?;
    if exec.namespace != namespace {
        return Err(EngineError::execution_not_found(id));
    }
    let flow = match (&exec.flow, exec.state) {
        (Some(member), State::Blocked) => Some(reads.get_flow(member.flow_id).await?),
        _ => None,
    };
    let (held, ahead) = if exec.state == State::Ready {
        (reads.held(&exec).await?, reads.count_ahead(&exec).await?)
    } else {
        (None, 0)
    };
    Ok(explain(&exec, flow.as_ref(), held, ahead))
}
