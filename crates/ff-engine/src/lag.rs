//! The promotion-lag histogram: how long a parent's commit took to make its
//! children claimable, the headline figure of the completion pipeline.
//!
//! Both ends are stamped by the backend's clock (the payload's
//! `committed_at`, the cascade report's `cascaded_at`), so the lag never mixes
//! the engine's clock with the backend's. Buckets are fixed, like a
//! Prometheus histogram, so an exporter renders a snapshot as is and several
//! engines' histograms can be summed.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the buckets, in milliseconds. Push-speed promotions land
/// in the first few; reconciler-speed ones (a missed stream event) in the
/// last few, so the two modes stay apart.
pub const LAG_BOUNDS_MS: [f64; 12] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 5_000.0,
];

/// One bucket per bound, plus one for lags above every bound.
const BUCKETS: usize = LAG_BOUNDS_MS.len() + 1;

/// Live lag histogram; relaxed atomics, like the other counters.
#[derive(Debug, Default)]
pub struct LagHistogram {
    buckets: [AtomicU64; BUCKETS],
    sum_ms: AtomicU64,
}

impl LagHistogram {
    /// Records one lag. Backend times are whole milliseconds.
    pub fn observe(&self, lag_ms: u64) {
        let bucket = LAG_BOUNDS_MS
            .iter()
            .position(|bound| lag_ms as f64 <= *bound)
            .unwrap_or(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ms.fetch_add(lag_ms, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> LagSnapshot {
        let mut buckets = [0; BUCKETS];
        for (copy, live) in buckets.iter_mut().zip(&self.buckets) {
            *copy = live.load(Ordering::Relaxed);
        }
        LagSnapshot {
            buckets,
            // Derived from the buckets so count and buckets always agree.
            count: buckets.iter().sum(),
            sum_ms: self.sum_ms.load(Ordering::Relaxed),
        }
    }
}

/// A point-in-time copy of a [`LagHistogram`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LagSnapshot {
    /// Observations per bucket (not cumulative): `buckets[i]` counts lags in
    /// `(LAG_BOUNDS_MS[i-1], LAG_BOUNDS_MS[i]]`; the last one counts lags
    /// above every bound.
    pub buckets: [u64; BUCKETS],
    /// Observations in all.
    pub count: u64,
    /// Sum of every observed lag, in milliseconds.
    pub sum_ms: u64,
}

impl LagSnapshot {
    /// The buckets' upper bounds, in milliseconds (the `+Inf` one excluded).
    pub fn bounds_ms(&self) -> &'static [f64] {
        &LAG_BOUNDS_MS
    }

    /// `(upper bound in ms, observations at or below it)` for every bound,
    /// then `(f64::INFINITY, count)`: Prometheus's cumulative `le` buckets.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let bounds = LAG_BOUNDS_MS.iter().copied().chain([f64::INFINITY]);
        bounds
            .zip(self.buckets.iter())
            .scan(0u64, |total, (bound, n)| {
                *total += n;
                Some((bound, *total))
            })
    }

    /// Mean lag in milliseconds; `None` before the first observation.
    pub fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_ms as f64 / self.count as f64)
    }

    /// The `q`-quantile (0..=1) in milliseconds, interpolated linearly inside
    /// its bucket as Prometheus's `histogram_quantile` does, so the figure
    /// matches a dashboard's. A quantile in the overflow bucket answers the
    /// highest bound. `None` before the first observation.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.count == 0 || q.is_nan() {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut below = 0u64;
        let mut lower = 0.0;
        for (i, n) in self.buckets.iter().copied().enumerate() {
            let Some(&upper) = LAG_BOUNDS_MS.get(i) else {
                return Some(lower);
            };
            if n > 0 && (below + n) as f64 >= rank {
                let within = (rank - below as f64) / n as f64;
                return Some(lower + (upper - lower) * within);
            }
            below += n;
            lower = upper;
        }
        Some(lower)
    }

    pub fn p50_ms(&self) -> Option<f64> {
        self.quantile_ms(0.5)
    }

    pub fn p99_ms(&self) -> Option<f64> {
        self.quantile_ms(0.99)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(lags: &[u64]) -> LagSnapshot {
        let h = LagHistogram::default();
        for lag in lags {
            h.observe(*lag);
        }
        h.snapshot()
    }

    #[test]
    fn buckets_by_upper_bound_inclusive() {
        let s = histogram(&[0, 1, 2, 3, 5_000, 5_001]);
        assert_eq!(s.buckets[0], 1, "0 ms ≤ 0.5");
        assert_eq!(s.buckets[1], 1, "1 ms ≤ 1");
        assert_eq!(s.buckets[2], 1, "2 ms ≤ 2");
        assert_eq!(s.buckets[3], 1, "3 ms ≤ 5");
        assert_eq!(s.buckets[11], 1, "5000 ms ≤ 5000");
        assert_eq!(s.buckets[12], 1, "5001 ms overflows");
        assert_eq!((s.count, s.sum_ms), (6, 10_007));
    }

    #[test]
    fn cumulative_buckets_end_with_the_count() {
        let s = histogram(&[0, 3, 3, 40]);
        let cumulative: Vec<_> = s.cumulative().collect();
        assert_eq!(cumulative.len(), LAG_BOUNDS_MS.len() + 1);
        assert_eq!(cumulative[0], (0.5, 1));
        assert_eq!(cumulative[3], (5.0, 3));
        assert_eq!(cumulative[6], (50.0, 4));
        assert_eq!(cumulative.last(), Some(&(f64::INFINITY, 4)));
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        assert_eq!(histogram(&[]).p50_ms(), None);
        // Ten lags of 3 ms: all in (2, 5]; the median sits halfway.
        let s = histogram(&[3; 10]);
        assert_eq!(s.p50_ms(), Some(3.5));
        assert_eq!(s.quantile_ms(1.0), Some(5.0));
        // 99 fast and one slow: p50 is fast, p99 still fast, p100 slow.
        let mut lags = vec![1; 99];
        lags.push(800);
        let s = histogram(&lags);
        assert!(s.p50_ms().is_some_and(|p| p <= 1.0), "{s:?}");
        assert!(s.p99_ms().is_some_and(|p| p <= 1.0), "{s:?}");
        assert_eq!(s.quantile_ms(1.0), Some(1_000.0));
        assert_eq!(s.mean_ms(), Some(8.99));
    }

    #[test]
    fn an_overflowing_quantile_answers_the_highest_bound() {
        let s = histogram(&[10_000, 20_000]);
        assert_eq!(s.p99_ms(), Some(5_000.0));
    }
}
