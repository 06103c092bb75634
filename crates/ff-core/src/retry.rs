//! Retry policy: attempts, exponential backoff with a cap, deterministic jitter.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::EngineError;
use crate::ids::ExecutionId;

/// How an execution is retried after a retryable failure.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Backoff before the first retry.
    pub initial_backoff_ms: u64,
    /// Backoff never grows past this.
    pub max_backoff_ms: u64,
    /// Up to this percentage of the backoff is taken off by jitter.
    pub jitter_percent: u8,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 5 * 60 * 1_000,
            jitter_percent: 20,
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Checks the policy's bounds.
    pub fn validate(&self) -> Result<(), EngineError> {
        if !(1..=1000).contains(&self.max_attempts) {
            return Err(EngineError::invalid(
                "retry.max_attempts",
                "must be between 1 and 1000",
            ));
        }
        if self.max_backoff_ms > 7 * 24 * 60 * 60 * 1000 {
            return Err(EngineError::invalid(
                "retry.max_backoff_ms",
                "must be at most 7 days",
            ));
        }
        if self.jitter_percent > 100 {
            return Err(EngineError::invalid(
                "retry.jitter_percent",
                "must be between 0 and 100",
            ));
        }
        Ok(())
    }

    /// The backoff after `attempt` (1-based) failed:
    /// `min(cap, initial * 2^(attempt-1))`, less a jitter of up to
    /// `jitter_percent` derived from a hash of (id, attempt) so that every
    /// backend computes the same retry time.
    pub fn backoff_ms(&self, id: ExecutionId, attempt: u32) -> u64 {
        let exponent = attempt.saturating_sub(1).min(62);
        let base = self
            .initial_backoff_ms
            .saturating_mul(1u64 << exponent)
            .min(self.max_backoff_ms);
        let span = base / 100 * u64::from(self.jitter_percent)
            + base % 100 * u64::from(self.jitter_percent) / 100;
        if span == 0 {
            return base;
        }
        base - jitter_hash(id, attempt) % (span + 1)
    }

    /// When the retry after `attempt` failed at `now` becomes due.
    pub fn retry_at(&self, id: ExecutionId, attempt: u32, now: Millis) -> Millis {
        now.saturating_add(self.backoff_ms(id, attempt) as Millis)
    }
}

/// FNV-1a over the id's bytes and the attempt, little-endian.
fn jitter_hash(id: ExecutionId, attempt: u32) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    id.as_bytes()
        .iter()
        .chain(attempt.to_le_bytes().iter())
        .fold(OFFSET, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_doubles_and_caps() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
            jitter_percent: 20,
        };
        let id = ExecutionId::new();
        for attempt in 1..=8 {
            let base = (100u64 << (attempt - 1)).min(1_000);
            let got = policy.backoff_ms(id, attempt);
            assert!(
                got <= base && got >= base * 80 / 100,
                "{attempt}: {got} vs {base}"
            );
            assert_eq!(got, policy.backoff_ms(id, attempt), "deterministic");
        }
    }

    #[test]
    fn zero_jitter_is_exact() {
        let policy = RetryPolicy {
            jitter_percent: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.backoff_ms(ExecutionId::new(), 2), 2_000);
    }
}
