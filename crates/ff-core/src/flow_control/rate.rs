//! Rate limits as token buckets: `n` tokens per `window_ms`, holding at
//! most `burst`. A bucket rather than a sliding window because its state
//! is two integers per key (a sliding window keeps a timestamp per claim),
//! it allows a burst on purpose, and its next token has an exact time a
//! claimer can sleep until instead of polling.
//!
//! Levels are kept in units of `1 / window_ms` of a token, so refills are
//! exact integers: the same on every backend, Lua's doubles included (the
//! level stays below 2^53 for any validated policy).

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::EngineError;

/// The longest window a rate policy may have: one day.
pub const MAX_WINDOW_MS: u64 = 24 * 60 * 60 * 1000;
/// The most tokens per window, and the largest burst.
pub const MAX_TOKENS: u64 = 1_000_000;

/// `n` per `window_ms`, at most `burst` saved up.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatePolicy {
    pub n: u64,
    pub window_ms: u64,
    pub burst: u64,
}

/// A key's bucket: its level (in `1 / window_ms` tokens) as of `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub level: u64,
    pub at: Millis,
}

impl RatePolicy {
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.n == 0 || self.n > MAX_TOKENS {
            return Err(EngineError::invalid(
                "n",
                format!("must be 1..={MAX_TOKENS}"),
            ));
        }
        if self.window_ms == 0 || self.window_ms > MAX_WINDOW_MS {
            return Err(EngineError::invalid(
                "window_ms",
                format!("must be 1..={MAX_WINDOW_MS}"),
            ));
        }
        if self.burst == 0 || self.burst > MAX_TOKENS {
            return Err(EngineError::invalid(
                "burst",
                format!("must be 1..={MAX_TOKENS}"),
            ));
        }
        Ok(())
    }

    /// A full bucket at `now`: what a key never seen starts with.
    pub fn full(&self, now: Millis) -> Bucket {
        Bucket {
            level: self.capacity(),
            at: now,
        }
    }

    fn capacity(&self) -> u64 {
        self.burst * self.window_ms
    }

    /// `bucket` refilled up to `now`.
    pub fn refill(&self, bucket: Bucket, now: Millis) -> Bucket {
        let elapsed = u64::try_from(now.saturating_sub(bucket.at)).unwrap_or(0);
        let level = bucket
            .level
            .saturating_add(elapsed.saturating_mul(self.n))
            .min(self.capacity());
        Bucket {
            level,
            at: now.max(bucket.at),
        }
    }

    /// Takes one token at `now`: the bucket after, or the time of the next
    /// token when there is none.
    pub fn take(&self, bucket: Bucket, now: Millis) -> Result<Bucket, Millis> {
        let bucket = self.refill(bucket, now);
        if bucket.level >= self.window_ms {
            return Ok(Bucket {
                level: bucket.level - self.window_ms,
                at: bucket.at,
            });
        }
        let missing = self.window_ms - bucket.level;
        let wait = missing.div_ceil(self.n);
        Err(bucket.at + Millis::try_from(wait).unwrap_or(Millis::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn per_second(n: u64, burst: u64) -> RatePolicy {
        RatePolicy {
            n,
            window_ms: 1_000,
            burst,
        }
    }

    #[test]
    fn a_full_bucket_allows_its_burst_then_waits() {
        let policy = per_second(10, 3);
        let mut bucket = policy.full(0);
        for _ in 0..3 {
            bucket = policy.take(bucket, 0).expect("within the burst");
        }
        // 10 per second: the next token is 100 ms away.
        assert_eq!(policy.take(bucket, 0), Err(100));
        assert_eq!(policy.take(bucket, 99), Err(100));
        assert!(policy.take(bucket, 100).is_ok());
    }

    #[test]
    fn the_rate_holds_over_a_window() {
        let policy = per_second(5, 1);
        let mut bucket = policy.full(0);
        let mut granted = 0;
        for now in 0..=10_000 {
            if let Ok(after) = policy.take(bucket, now) {
                bucket = after;
                granted += 1;
            }
        }
        // One saved up, then five a second for ten seconds.
        assert_eq!(granted, 51);
    }

    #[test]
    fn refill_never_passes_the_burst() {
        let policy = per_second(100, 2);
        let bucket = policy.refill(Bucket { level: 0, at: 0 }, 1_000_000);
        assert_eq!(bucket.level, 2 * 1_000);
    }

    #[test]
    fn a_slow_rate_waits_whole_windows() {
        let policy = RatePolicy {
            n: 1,
            window_ms: 60_000,
            burst: 1,
        };
        let bucket = policy.take(policy.full(0), 0).expect("one saved up");
        assert_eq!(policy.take(bucket, 30_000), Err(60_000));
    }

    #[test]
    fn bad_policies_name_their_field() {
        let field = |p: RatePolicy| {
            p.validate()
                .err()
                .and_then(|e| e.field().map(str::to_owned))
        };
        assert_eq!(field(per_second(0, 1)).as_deref(), Some("n"));
        assert_eq!(field(per_second(1, 0)).as_deref(), Some("burst"));
        let no_window = RatePolicy {
            n: 1,
            window_ms: 0,
            burst: 1,
        };
        assert_eq!(field(no_window).as_deref(), Some("window_ms"));
        assert_eq!(field(per_second(MAX_TOKENS, MAX_TOKENS)), None);
    }
}
