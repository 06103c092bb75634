//! What is stored about an execution's waiting — its waitpoints, the
//! signals they received and its suspensions — and the requests and
//! answers of the signal operations.

use serde::{Deserialize, Serialize};

use super::condition::ResumeCondition;
use crate::clock::Millis;
use crate::error::EngineError;
use crate::ids::SignalId;
use crate::json::JsonText;
use crate::limits::Limits;

/// How long a waitpoint (and its token) lives when the request names no
/// lifetime: seven days.
pub const DEFAULT_WAITPOINT_TTL_MS: u64 = 7 * 24 * 60 * 60 * 1000;
/// The longest lifetime a waitpoint may ask for: one year.
pub const MAX_WAITPOINT_TTL_MS: u64 = 365 * 24 * 60 * 60 * 1000;
/// The name of the signal a `resume` timeout delivers.
pub const TIMEOUT_SIGNAL: &str = "timeout";
/// The source of the signal a `resume` timeout delivers.
pub const TIMEOUT_SOURCE: &str = "ff:timeout";

/// An execution's waitpoints, signals and suspensions. Empty until its
/// handler first creates a waitpoint or suspends.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitState {
    pub waitpoints: Vec<Waitpoint>,
    /// Every signal received, in arrival order.
    pub signals: Vec<Signal>,
    /// Every suspension asked for, in order; the last may be in force.
    pub suspensions: Vec<Suspension>,
}

impl WaitState {
    pub fn waitpoint(&self, key: &str) -> Option<&Waitpoint> {
        self.waitpoints.iter().find(|w| w.key == key)
    }

    pub(crate) fn waitpoint_mut(&mut self, key: &str) -> Option<&mut Waitpoint> {
        self.waitpoints.iter_mut().find(|w| w.key == key)
    }

    /// The suspension in force, when the execution is suspended.
    pub fn current(&self) -> Option<&Suspension> {
        self.suspensions.last().filter(|s| s.ended.is_none())
    }

    /// The signals of `ids`, in their order.
    pub fn signals_of(&self, ids: &[SignalId]) -> Vec<Signal> {
        ids.iter()
            .filter_map(|id| self.signals.iter().find(|s| s.id == *id))
            .cloned()
            .collect()
    }
}

/// A named point an execution waits at. Its key is unique for the
/// execution's life, so a token authorises exactly one waitpoint.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waitpoint {
    pub key: String,
    /// The attempt it belongs to: the one that created it, or the retry
    /// that took it over while it was still pending.
    pub attempt: u32,
    pub created_at: Millis,
    /// After this, signals to it are refused (its token has expired).
    pub expires_at: Millis,
    pub state: WaitpointState,
}

/// Where a waitpoint stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitpointState {
    /// Created by a running handler; signals to it are buffered.
    Pending,
    /// The execution is suspended on it.
    Waiting,
    /// Its suspension resumed or timed out; it takes no more signals.
    Closed,
}

/// One signal as stored and as handed to the resumed handler.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub id: SignalId,
    /// The waitpoint it was delivered to; `None` for the timeout's signal.
    pub waitpoint: Option<String>,
    pub name: String,
    /// Stored verbatim.
    pub payload: JsonText,
    pub source: Option<String>,
    pub idempotency_key: Option<String>,
    pub received_at: Millis,
}

/// What to do when a suspension's timeout passes first.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutPolicy {
    /// Fail the execution (error `suspension_timeout`); no retry.
    #[default]
    Fail,
    /// Cancel the execution.
    Cancel,
    /// Resume it with a synthetic `timeout` signal.
    Resume,
}

/// One suspension of an attempt.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    /// The caller's key: a repeat with the same lease handle and key is a
    /// replay.
    pub key: String,
    pub attempt: u32,
    pub lease_epoch: u64,
    pub waitpoints: Vec<String>,
    pub condition: ResumeCondition,
    pub timeout_at: Option<Millis>,
    pub on_timeout: TimeoutPolicy,
    pub suspended_at: Millis,
    /// How it ended; `None` while in force.
    pub ended: Option<SuspensionEnd>,
    /// The signals that satisfied it, in arrival order.
    pub satisfied_by: Vec<SignalId>,
}

/// How a suspension ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SuspensionEnd {
    /// Signals already delivered satisfied it when it was asked for; the
    /// handler kept its lease.
    AlreadySatisfied { at: Millis },
    /// Signals satisfied it; the execution became ready.
    Resumed { at: Millis },
    /// The timeout passed first and its policy was applied.
    TimedOut { at: Millis },
    /// The execution ended otherwise (cancel, deadline) while suspended.
    Ended { at: Millis },
}

/// A running handler's request to create a waitpoint before it suspends.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitpointRequest {
    pub key: String,
    /// How long the waitpoint and its token live; default seven days.
    #[serde(default)]
    pub ttl_ms: Option<u64>,
}

impl WaitpointRequest {
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            ttl_ms: None,
        }
    }

    pub fn validate(&self, limits: &Limits) -> Result<(), EngineError> {
        limits.check_name("key", &self.key)?;
        check_span("ttl_ms", self.ttl_ms)
    }
}

/// A lifetime or timeout, when given: 1 ms up to one year.
fn check_span(field: &str, ms: Option<u64>) -> Result<(), EngineError> {
    match ms {
        Some(0) => Err(EngineError::invalid(field, "must be greater than zero")),
        Some(ms) if ms > MAX_WAITPOINT_TTL_MS => Err(EngineError::invalid(
            field,
            format!("must be at most {MAX_WAITPOINT_TTL_MS} ms (one year)"),
        )),
        _ => Ok(()),
    }
}

/// A waitpoint and the token that signals it. The token is a secret: it
/// is left out of `Debug`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitpointGrant {
    pub key: String,
    pub expires_at: Millis,
    pub token: String,
}

impl std::fmt::Debug for WaitpointGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitpointGrant")
            .field("key", &self.key)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A running handler's request to suspend.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuspendRequest {
    /// Makes the call idempotent per lease handle: a repeat answers as the
    /// first call did.
    pub key: String,
    /// The waitpoints to wait on; those not created yet are created now.
    pub waitpoints: Vec<String>,
    #[serde(default = "any")]
    pub condition: ResumeCondition,
    /// How long to wait before the timeout policy applies; none waits
    /// until the waitpoints expire or the execution's deadline.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub on_timeout: TimeoutPolicy,
    /// The lifetime of waitpoints this call creates; default seven days.
    #[serde(default)]
    pub ttl_ms: Option<u64>,
}

fn any() -> ResumeCondition {
    ResumeCondition::Any
}

impl SuspendRequest {
    /// Suspends on `waitpoints` until any of them is signalled.
    pub fn on<S: Into<String>>(
        key: impl Into<String>,
        waitpoints: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            key: key.into(),
            waitpoints: waitpoints.into_iter().map(Into::into).collect(),
            condition: ResumeCondition::Any,
            timeout_ms: None,
            on_timeout: TimeoutPolicy::Fail,
            ttl_ms: None,
        }
    }

    pub fn condition(mut self, condition: ResumeCondition) -> Self {
        self.condition = condition;
        self
    }

    pub fn timeout(mut self, timeout_ms: u64, on_timeout: TimeoutPolicy) -> Self {
        self.timeout_ms = Some(timeout_ms);
        self.on_timeout = on_timeout;
        self
    }

    pub fn validate(&self, limits: &Limits) -> Result<(), EngineError> {
        limits.check_name("key", &self.key)?;
        if self.waitpoints.len() > limits.max_waitpoints {
            return Err(EngineError::invalid(
                "waitpoints",
                format!("more than {}", limits.max_waitpoints),
            ));
        }
        for key in &self.waitpoints {
            limits.check_name("waitpoints", key)?;
        }
        self.condition.validate(&self.waitpoints)?;
        if let ResumeCondition::Count { n, .. } = self.condition {
            if n as usize > limits.max_signals {
                return Err(EngineError::invalid(
                    "condition.n",
                    format!("{n} signals is over the limit of {}", limits.max_signals),
                ));
            }
        }
        check_span("timeout_ms", self.timeout_ms)?;
        check_span("ttl_ms", self.ttl_ms)
    }
}

/// The answer to suspend (the same on a replay).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SuspendResponse {
    /// The execution is suspended and its lease released; hand the tokens
    /// to whoever is to signal.
    Suspended {
        waitpoints: Vec<WaitpointGrant>,
        timeout_at: Option<Millis>,
    },
    /// Signals already delivered satisfy the condition: the handler keeps
    /// its lease and goes on with these signals.
    AlreadySatisfied { signals: Vec<Signal> },
}

/// A signal as sent.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    pub name: String,
    #[serde(default)]
    pub payload: JsonText,
    #[serde(default)]
    pub source: Option<String>,
    /// A repeat with the same key (per waitpoint) answers with the first
    /// signal's id and `duplicate: true`, and stores nothing.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

impl SignalRequest {
    pub fn new(name: impl Into<String>, payload: JsonText) -> Self {
        Self {
            name: name.into(),
            payload,
            source: None,
            idempotency_key: None,
        }
    }

    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub fn validate(&self, limits: &Limits) -> Result<(), EngineError> {
        limits.check_name("name", &self.name)?;
        limits.check_size(
            "payload",
            self.payload.len(),
            limits.max_signal_payload_bytes,
        )?;
        limits.check_json("payload", &self.payload)?;
        if let Some(source) = &self.source {
            if source.is_empty() {
                return Err(EngineError::invalid("source", "must not be empty"));
            }
            limits.check_size("source", source.len(), limits.max_tag_bytes)?;
        }
        if let Some(key) = &self.idempotency_key {
            if key.is_empty() {
                return Err(EngineError::invalid("idempotency_key", "must not be empty"));
            }
            limits.check_size("idempotency_key", key.len(), limits.max_tag_bytes)?;
        }
        Ok(())
    }
}

/// The answer to a signal.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalResponse {
    pub signal_id: SignalId,
    /// True when the idempotency key matched an earlier signal: nothing
    /// was stored.
    pub duplicate: bool,
    /// True when this signal resumed the execution.
    pub resumed: bool,
}

/// An execution's waitpoints and signals, as reads return them (tokens
/// are never read back).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalsView {
    pub waitpoints: Vec<Waitpoint>,
    pub signals: Vec<Signal>,
    pub suspensions: Vec<Suspension>,
}
