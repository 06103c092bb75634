//! Execution states and terminal outcomes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// Where an execution stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waits on flow dependencies.
    Blocked,
    /// Waits for a time: `run_at` or a retry backoff.
    Scheduled,
    /// Claimable.
    Ready,
    /// Leased by a worker.
    Running,
    /// Waits for signals.
    Suspended,
    Completed,
    Failed,
    Cancelled,
    Skipped,
}

impl State {
    /// Every state, in display order.
    pub const ALL: [State; 9] = [
        State::Blocked,
        State::Scheduled,
        State::Ready,
        State::Running,
        State::Suspended,
        State::Completed,
        State::Failed,
        State::Cancelled,
        State::Skipped,
    ];

    /// Whether no transition leaves this state (except requeue of `failed`).
    pub fn is_terminal(self) -> bool {
        self.outcome().is_some()
    }

    /// The outcome of a terminal state.
    pub fn outcome(self) -> Option<Outcome> {
        match self {
            State::Completed => Some(Outcome::Completed),
            State::Failed => Some(Outcome::Failed),
            State::Cancelled => Some(Outcome::Cancelled),
            State::Skipped => Some(Outcome::Skipped),
            _ => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Blocked => "blocked",
            State::Scheduled => "scheduled",
            State::Ready => "ready",
            State::Running => "running",
            State::Suspended => "suspended",
            State::Completed => "completed",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
            State::Skipped => "skipped",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| EngineError::invalid("state", format!("unknown state `{s}`")))
    }
}

/// How a terminal execution ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    Failed,
    Cancelled,
    Skipped,
}

impl Outcome {
    /// The terminal state of this outcome.
    pub fn state(self) -> State {
        match self {
            Outcome::Completed => State::Completed,
            Outcome::Failed => State::Failed,
            Outcome::Cancelled => State::Cancelled,
            Outcome::Skipped => State::Skipped,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        self.state().as_str()
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<State>()?
            .outcome()
            .ok_or_else(|| EngineError::invalid("outcome", format!("`{s}` is not terminal")))
    }
}
