//! Size and count limits, validated in `ff-core` so every backend agrees.

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::json::JsonText;

/// Configurable limits on user input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    pub max_payload_bytes: usize,
    pub max_result_bytes: usize,
    pub max_error_bytes: usize,
    pub max_tags: usize,
    pub max_tag_bytes: usize,
    pub max_name_bytes: usize,
    pub max_capabilities: usize,
    pub max_batch: usize,
    pub max_flow_nodes: usize,
    pub max_lease_ms: u64,
    /// How deeply arrays and objects may nest in a payload or result.
    pub max_json_depth: usize,
    /// A signal's payload.
    pub max_signal_payload_bytes: usize,
    /// Signals one execution may be sent in its life (a `resume`
    /// timeout's own signal comes on top).
    pub max_signals: usize,
    /// Waitpoints one execution may create in its life.
    pub max_waitpoints: usize,
    /// Times one execution may suspend in its life.
    pub max_suspensions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload_bytes: 1024 * 1024,
            max_result_bytes: 1024 * 1024,
            max_error_bytes: 16 * 1024,
            max_tags: 32,
            max_tag_bytes: 256,
            max_name_bytes: 128,
            max_capabilities: 32,
            max_batch: 1000,
            max_flow_nodes: 10_000,
            max_lease_ms: 24 * 60 * 60 * 1000,
            max_json_depth: crate::json::DEFAULT_MAX_JSON_DEPTH,
            max_signal_payload_bytes: 64 * 1024,
            max_signals: 100,
            max_waitpoints: 32,
            max_suspensions: 32,
        }
    }
}

impl Limits {
    /// A name (namespace, lane, kind, capability, worker id): 1..=max bytes of
    /// letters, digits and `_ - . : /`.
    pub fn check_name(&self, field: &str, name: &str) -> Result<(), EngineError> {
        if name.is_empty() {
            return Err(EngineError::invalid(field, "must not be empty"));
        }
        if name.len() > self.max_name_bytes {
            return Err(EngineError::invalid(
                field,
                format!("longer than {} bytes", self.max_name_bytes),
            ));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/')))
        {
            return Err(EngineError::invalid(
                field,
                format!("character {bad:?} is not allowed (use letters, digits, _ - . : /)"),
            ));
        }
        Ok(())
    }

    /// A byte size against its limit.
    pub fn check_size(&self, field: &str, len: usize, max: usize) -> Result<(), EngineError> {
        if len > max {
            return Err(EngineError::invalid(
                field,
                format!("{len} bytes is over the limit of {max} bytes"),
            ));
        }
        Ok(())
    }

    /// A batch's length.
    pub fn check_batch(&self, field: &str, len: usize) -> Result<(), EngineError> {
        if len == 0 {
            return Err(EngineError::invalid(field, "must not be empty"));
        }
        if len > self.max_batch {
            return Err(EngineError::invalid(
                field,
                format!("{len} items is over the limit of {}", self.max_batch),
            ));
        }
        Ok(())
    }

    /// A payload or result: one JSON value nested at most
    /// `max_json_depth` deep.
    pub fn check_json(&self, field: &str, json: &JsonText) -> Result<(), EngineError> {
        json.validate_within(field, self.max_json_depth)
    }

    /// A worker's result: within the size limit and one JSON value nested
    /// at most `max_json_depth` deep.
    pub fn check_result(&self, result: &JsonText) -> Result<(), EngineError> {
        self.check_size("result", result.len(), self.max_result_bytes)?;
        self.check_json("result", result)
    }

    /// A worker's error text.
    pub fn check_error(&self, error: &str) -> Result<(), EngineError> {
        self.check_size("error", error.len(), self.max_error_bytes)
    }
}
