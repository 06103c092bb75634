//! The execution record and its submission: defaults resolved and input
//! validated here, once, for every backend.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::EngineError;
use crate::flow::Inputs;
use crate::ids::{ExecutionId, FlowId};
use crate::json::JsonText;
use crate::lease_token::LeaseToken;
use crate::limits::Limits;
use crate::retry::RetryPolicy;
use crate::state::{Outcome, State};
use crate::suspension::WaitState;

/// The namespace used when a request names none.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The lease length used when a request names none.
pub const DEFAULT_LEASE_MS: u64 = 30_000;
/// How many times an execution may be released before release is refused.
pub const DEFAULT_MAX_RELEASES: u32 = 10;
/// The times accepted for `deadline` and `run_at`, in epoch milliseconds:
/// from 2000-01-01 up to 3000-01-01 (UTC). A time outside is a unit
/// mistake (seconds, or a duration instead of a time) and would overflow
/// arithmetic on it or lose precision in Lua's doubles.
pub const TIME_RANGE_MS: std::ops::Range<Millis> = 946_684_800_000..32_503_680_000_000;
/// Lowest and highest priority.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = -100..=100;

/// A request to run one execution.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    #[serde(default)]
    pub namespace: Option<String>,
    pub lane: String,
    pub kind: String,
    #[serde(default)]
    pub payload: JsonText,
    #[serde(default)]
    pub priority: Option<i32>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    #[serde(default)]
    pub lease_ms: Option<u64>,
    #[serde(default)]
    pub attempt_timeout_ms: Option<u64>,
    /// Absolute time (epoch ms) after which the execution fails with `deadline`.
    #[serde(default)]
    pub deadline: Option<Millis>,
    /// Absolute time (epoch ms) before which it is not claimable.
    #[serde(default)]
    pub run_at: Option<Millis>,
    /// Counts against the concurrency policy matching it while running.
    #[serde(default)]
    pub concurrency_key: Option<String>,
    /// Takes a token from the rate policy matching it at each claim.
    #[serde(default)]
    pub rate_key: Option<String>,
    /// Shares its lane by the weight a fair-share policy gives it, and
    /// names the budget scope it spends from; the namespace when unset.
    #[serde(default)]
    pub fairness_key: Option<String>,
}

impl SubmitRequest {
    /// A request for `kind` on `lane` with `payload` and every default.
    pub fn new(lane: impl Into<String>, kind: impl Into<String>, payload: JsonText) -> Self {
        Self {
            namespace: None,
            lane: lane.into(),
            kind: kind.into(),
            payload,
            priority: None,
            capabilities: Vec::new(),
            tags: BTreeMap::new(),
            idempotency_key: None,
            retry: None,
            lease_ms: None,
            attempt_timeout_ms: None,
            deadline: None,
            run_at: None,
            concurrency_key: None,
            rate_key: None,
            fairness_key: None,
        }
    }

    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }

    pub fn capabilities<S: Into<String>>(mut self, caps: impl IntoIterator<Item = S>) -> Self {
        self.capabilities = caps.into_iter().map(Into::into).collect();
        self
    }

    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    pub fn lease_ms(mut self, lease_ms: u64) -> Self {
        self.lease_ms = Some(lease_ms);
        self
    }

    pub fn attempt_timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.attempt_timeout_ms = Some(timeout_ms);
        self
    }

    pub fn deadline(mut self, at: Millis) -> Self {
        self.deadline = Some(at);
        self
    }

    pub fn run_at(mut self, at: Millis) -> Self {
        self.run_at = Some(at);
        self
    }

    pub fn concurrency_key(mut self, key: impl Into<String>) -> Self {
        self.concurrency_key = Some(key.into());
        self
    }

    pub fn rate_key(mut self, key: impl Into<String>) -> Self {
        self.rate_key = Some(key.into());
        self
    }

    pub fn fairness_key(mut self, key: impl Into<String>) -> Self {
        self.fairness_key = Some(key.into());
        self
    }

    /// Whether it carries a concurrency, rate or fairness key (one naming
    /// the namespace is the default, so no key).
    pub fn has_flow_control_keys(&self) -> bool {
        let ns = self.resolved_namespace();
        self.concurrency_key.is_some()
            || self.rate_key.is_some()
            || self.fairness_key.as_deref().is_some_and(|k| k != ns)
    }

    /// The namespace this request resolves to.
    pub fn resolved_namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }

    /// Checks every field against `limits`; changes nothing.
    pub fn validate(&self, limits: &Limits) -> Result<(), EngineError> {
        limits.check_name("namespace", self.resolved_namespace())?;
        limits.check_name("lane", &self.lane)?;
        limits.check_name("kind", &self.kind)?;
        limits.check_size("payload", self.payload.len(), limits.max_payload_bytes)?;
        limits.check_json("payload", &self.payload)?;
        if let Some(priority) = self.priority {
            if !PRIORITY_RANGE.contains(&priority) {
                return Err(EngineError::invalid(
                    "priority",
                    format!("{priority} is outside -100..=100"),
                ));
            }
        }
        if self.capabilities.len() > limits.max_capabilities {
            return Err(EngineError::invalid(
                "capabilities",
                format!("more than {}", limits.max_capabilities),
            ));
        }
        for cap in &self.capabilities {
            limits.check_name("capabilities", cap)?;
        }
        if self.tags.len() > limits.max_tags {
            return Err(EngineError::invalid(
                "tags",
                format!(
                    "{} tags is over the limit of {}",
                    self.tags.len(),
                    limits.max_tags
                ),
            ));
        }
        for (key, value) in &self.tags {
            if key.is_empty() {
                return Err(EngineError::invalid("tags", "a tag key must not be empty"));
            }
            limits.check_size("tags", key.len() + value.len(), limits.max_tag_bytes)?;
        }
        if let Some(key) = &self.idempotency_key {
            if key.is_empty() {
                return Err(EngineError::invalid("idempotency_key", "must not be empty"));
            }
            limits.check_size("idempotency_key", key.len(), limits.max_tag_bytes)?;
        }
        if let Some(retry) = &self.retry {
            retry.validate()?;
        }
        if let Some(lease_ms) = self.lease_ms {
            check_duration("lease_ms", lease_ms, limits.max_lease_ms)?;
        }
        if let Some(timeout) = self.attempt_timeout_ms {
            check_duration("attempt_timeout_ms", timeout, limits.max_lease_ms * 30)?;
        }
        for (field, key) in [
            ("concurrency_key", &self.concurrency_key),
            ("rate_key", &self.rate_key),
            ("fairness_key", &self.fairness_key),
        ] {
            if let Some(key) = key {
                limits.check_name(field, key)?;
            }
        }
        for (field, at) in [("deadline", self.deadline), ("run_at", self.run_at)] {
            if matches!(at, Some(t) if !TIME_RANGE_MS.contains(&t)) {
                return Err(EngineError::invalid(
                    field,
                    "must be epoch milliseconds between 2000-01-01 and 3000-01-01",
                ));
            }
        }
        Ok(())
    }
}

fn check_duration(field: &str, ms: u64, max: u64) -> Result<(), EngineError> {
    if ms == 0 {
        return Err(EngineError::invalid(field, "must be greater than zero"));
    }
    if ms > max {
        return Err(EngineError::invalid(
            field,
            format!("must be at most {max} ms"),
        ));
    }
    Ok(())
}

/// Where a submission came from in a flow.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowMembership {
    pub flow_id: FlowId,
    pub node_key: String,
}

/// Why an attempt ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptEnd {
    Completed,
    /// The worker failed it; `retry_at` when a retry was scheduled.
    Failed {
        retry_at: Option<Millis>,
    },
    LeaseExpired,
    AttemptTimeout,
    Released,
    /// The attempt suspended; a resume continues it under a new lease.
    Suspended,
    Cancelled,
    Deadline,
}

/// One claim of an execution and how it ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub lease_epoch: u64,
    pub worker_id: String,
    pub started_at: Millis,
    pub ended_at: Option<Millis>,
    pub end: Option<AttemptEnd>,
    pub error: Option<String>,
}

/// The stored execution: its resolved spec and its state.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub id: ExecutionId,
    pub namespace: String,
    pub lane: String,
    pub kind: String,
    pub payload: JsonText,
    pub priority: i32,
    /// Sorted and deduplicated.
    pub capabilities: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub idempotency_key: Option<String>,
    pub retry: RetryPolicy,
    pub lease_ms: u64,
    pub attempt_timeout_ms: Option<u64>,
    pub deadline: Option<Millis>,
    pub run_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fairness_key: Option<String>,
    pub flow: Option<FlowMembership>,

    pub state: State,
    /// The current (or last) attempt, 0 before the first claim.
    pub attempt: u32,
    /// Increases with every claim.
    pub lease_epoch: u64,
    /// The secret of the current (or last) lease. Never serialized, so no
    /// read of an execution reveals it; each backend stores it itself.
    #[serde(default, skip_serializing)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub lease_token: Option<LeaseToken>,
    /// Attempts allowed in all; `retry.max_attempts` plus requeues.
    pub attempts_allowed: u32,
    pub releases: u32,
    /// The next claim reuses `attempt` (the last lease was released).
    pub reuse_attempt: bool,
    pub lease_until: Option<Millis>,
    pub attempt_deadline: Option<Millis>,
    pub worker_id: Option<String>,
    /// When it last became (or becomes) claimable; orders the lane.
    pub ready_at: Millis,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub finished_at: Option<Millis>,
    pub result: Option<JsonText>,
    /// The last error recorded.
    pub error: Option<String>,
    pub attempts: Vec<AttemptRecord>,
    /// For a flow node: what its parents ended with, fixed when it became ready.
    pub inputs: Option<Inputs>,
    /// Waitpoints, signals and suspensions, once the handler used any.
    #[serde(default)]
    pub wait: Option<WaitState>,
}

impl Execution {
    /// Resolves a validated request into a new execution at `now`.
    pub fn new(id: ExecutionId, req: SubmitRequest, now: Millis) -> Self {
        let retry = req.retry.unwrap_or_default();
        let mut capabilities = req.capabilities;
        capabilities.sort();
        capabilities.dedup();
        let (state, ready_at) = match req.run_at {
            Some(at) if at > now => (State::Scheduled, at),
            _ => (State::Ready, now),
        };
        let namespace = req
            .namespace
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        // A fairness key naming the namespace is the default one.
        let fairness_key = req.fairness_key.filter(|k| *k != namespace);
        Self {
            id,
            namespace,
            lane: req.lane,
            kind: req.kind,
            payload: req.payload,
            priority: req.priority.unwrap_or(0),
            capabilities,
            tags: req.tags,
            idempotency_key: req.idempotency_key,
            retry,
            lease_ms: req.lease_ms.unwrap_or(DEFAULT_LEASE_MS),
            attempt_timeout_ms: req.attempt_timeout_ms,
            deadline: req.deadline,
            run_at: req.run_at,
            concurrency_key: req.concurrency_key,
            rate_key: req.rate_key,
            fairness_key,
            flow: None,
            state,
            attempt: 0,
            lease_epoch: 0,
            lease_token: None,
            attempts_allowed: retry.max_attempts,
            releases: 0,
            reuse_attempt: false,
            lease_until: None,
            attempt_deadline: None,
            worker_id: None,
            ready_at,
            created_at: now,
            updated_at: now,
            finished_at: None,
            result: None,
            error: None,
            attempts: Vec::new(),
            inputs: None,
            wait: None,
        }
    }

    /// Whether `req` asks for the spec this execution was submitted with,
    /// defaults resolved as at submit; the payload is compared as written.
    pub fn same_spec_as(&self, req: &SubmitRequest) -> bool {
        let mut capabilities: Vec<&String> = req.capabilities.iter().collect();
        capabilities.sort();
        capabilities.dedup();
        self.namespace == req.resolved_namespace()
            && self.lane == req.lane
            && self.kind == req.kind
            && self.payload == req.payload
            && self.priority == req.priority.unwrap_or(0)
            && self.capabilities.iter().eq(capabilities)
            && self.tags == req.tags
            && self.retry == req.retry.unwrap_or_default()
            && self.lease_ms == req.lease_ms.unwrap_or(DEFAULT_LEASE_MS)
            && self.attempt_timeout_ms == req.attempt_timeout_ms
            && self.deadline == req.deadline
            && self.run_at == req.run_at
            && self.concurrency_key == req.concurrency_key
            && self.rate_key == req.rate_key
            && self.fairness_key.as_deref()
                == req
                    .fairness_key
                    .as_deref()
                    .filter(|k| *k != req.resolved_namespace())
    }

    /// Whether `other` was submitted with this execution's spec.
    pub fn same_spec(&self, other: &Execution) -> bool {
        self.namespace == other.namespace
            && self.lane == other.lane
            && self.kind == other.kind
            && self.payload == other.payload
            && self.priority == other.priority
            && self.capabilities == other.capabilities
            && self.tags == other.tags
            && self.retry == other.retry
            && self.lease_ms == other.lease_ms
            && self.attempt_timeout_ms == other.attempt_timeout_ms
            && self.deadline == other.deadline
            && self.run_at == other.run_at
            && self.concurrency_key == other.concurrency_key
            && self.rate_key == other.rate_key
            && self.fairness_key == other.fairness_key
    }

    /// Whether it carries a concurrency, rate or fairness key.
    pub fn has_flow_control_keys(&self) -> bool {
        self.concurrency_key.is_some() || self.rate_key.is_some() || self.fairness_key.is_some()
    }

    /// The fairness key it shares its lane by: its own, or its namespace.
    pub fn fairness(&self) -> &str {
        self.fairness_key.as_deref().unwrap_or(&self.namespace)
    }

    /// The outcome, once terminal.
    pub fn outcome(&self) -> Option<Outcome> {
        self.state.outcome()
    }

    /// Whether a claim at `now` may take it (state and time; capabilities
    /// and lanes are the caller's filter).
    pub fn is_claimable(&self, now: Millis) -> bool {
        matches!(self.state, State::Ready | State::Scheduled)
            && self.ready_at <= now
            && self.deadline.is_none_or(|d| d > now)
    }

    /// Whether a worker advertising `caps` (sorted) may run it.
    pub fn capabilities_met_by(&self, caps: &[String]) -> bool {
        self.capabilities
            .iter()
            .all(|need| caps.binary_search(need).is_ok())
    }

    /// Whether it holds a concurrency slot at `now`: running on a lease
    /// that has not lapsed, so an expired lease frees its slot before the
    /// expiry scan gets to it.
    pub fn holds_slot(&self, now: Millis) -> bool {
        self.state == State::Running && crate::lease::fencing::lapsed(self, now).is_none()
    }

    /// The lane order key: priority (higher first), `ready_at`, id.
    pub fn order_key(&self) -> (i32, Millis, ExecutionId) {
        (-self.priority, self.ready_at, self.id)
    }

    /// The current attempt's record, while there is one.
    pub fn current_attempt(&self) -> Option<&AttemptRecord> {
        self.attempts
            .last()
            .filter(|a| a.attempt == self.attempt && a.lease_epoch == self.lease_epoch)
    }

    pub(crate) fn current_attempt_mut(&mut self) -> Option<&mut AttemptRecord> {
        let (attempt, epoch) = (self.attempt, self.lease_epoch);
        self.attempts
            .last_mut()
            .filter(|a| a.attempt == attempt && a.lease_epoch == epoch)
    }
}

/// The answer to a submit.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    pub id: ExecutionId,
    /// False when an idempotency key matched an existing execution.
    pub created: bool,
    /// True when that existing execution was submitted with another spec
    /// than this request's: the request was not stored, and the answer is
    /// the first execution all the same.
    #[serde(default)]
    pub conflicting_spec: bool,
}

impl Submitted {
    /// A new execution was stored under `id`.
    pub fn created(id: ExecutionId) -> Self {
        Self {
            id,
            created: true,
            conflicting_spec: false,
        }
    }

    /// The request repeated the idempotency key of `existing`.
    pub fn repeat_of(existing: &Execution, req: &SubmitRequest) -> Self {
        Self {
            id: existing.id,
            created: false,
            conflicting_spec: !existing.same_spec_as(req),
        }
    }
}

/// Validates a whole batch before anything is stored; the error names the
/// offending item, e.g. `requests[3].lane`.
pub fn validate_batch(reqs: &[SubmitRequest], limits: &Limits) -> Result<(), EngineError> {
    limits.check_batch("requests", reqs.len())?;
    for (i, req) in reqs.iter().enumerate() {
        req.validate(limits)
            .map_err(|e| e.in_field(&format!("requests[{i}]")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{SubmitRequest, TIME_RANGE_MS};
    use crate::{JsonText, Limits};

    fn field_of(req: &SubmitRequest, limits: &Limits) -> Option<String> {
        req.validate(limits)
            .err()
            .and_then(|e| e.field().map(str::to_owned))
    }

    #[test]
    fn times_must_be_plausible_epoch_milliseconds() {
        let limits = Limits::default();
        let job = || SubmitRequest::new("lane", "kind", JsonText::null());
        let now = 1_700_000_000_000;
        assert_eq!(field_of(&job().run_at(now).deadline(now), &limits), None);
        // Seconds instead of milliseconds, a duration, the far future.
        assert_eq!(
            field_of(&job().run_at(1_700_000_000), &limits).as_deref(),
            Some("run_at")
        );
        assert_eq!(
            field_of(&job().deadline(30_000), &limits).as_deref(),
            Some("deadline")
        );
        assert_eq!(
            field_of(&job().deadline(i64::MAX), &limits).as_deref(),
            Some("deadline")
        );
        assert_eq!(
            field_of(&job().run_at(-1), &limits).as_deref(),
            Some("run_at")
        );
        assert_eq!(field_of(&job().run_at(TIME_RANGE_MS.start), &limits), None);
        assert_eq!(
            field_of(&job().run_at(TIME_RANGE_MS.end), &limits).as_deref(),
            Some("run_at")
        );
    }

    #[test]
    fn payload_nesting_is_limited() {
        let nested = |depth: usize| {
            JsonText::unchecked(format!("{}{}", "[".repeat(depth), "]".repeat(depth)))
        };
        let limits = Limits::default();
        let job = |depth| SubmitRequest::new("lane", "kind", nested(depth));
        assert_eq!(field_of(&job(limits.max_json_depth), &limits), None);
        assert_eq!(
            field_of(&job(limits.max_json_depth + 1), &limits).as_deref(),
            Some("payload")
        );
        let strict = Limits {
            max_json_depth: 4,
            ..Limits::default()
        };
        assert_eq!(field_of(&job(5), &strict).as_deref(), Some("payload"));
    }
}
