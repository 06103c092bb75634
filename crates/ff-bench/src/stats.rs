//! Distributions and medians: what one run measured, and how runs combine.
//!
//! Latencies measured here are recorded in an HDR histogram in microseconds
//! (three significant digits). The engine's promotion lag arrives as its own
//! fixed-bucket histogram ([`LagSnapshot`]); both answer the same questions
//! through [`Dist`], so the report treats them alike.

use std::time::Duration;

use anyhow::Context;
use ff_engine::LagSnapshot;
use hdrhistogram::Histogram;

/// Lowest and highest recordable latency, in microseconds (1 µs .. 1 h).
const LOWEST_US: u64 = 1;
const HIGHEST_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Latencies {
    pub fn new() -> anyhow::Result<Self> {
        Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, 3)
            .map(Self)
            .context("creating a latency histogram")
    }

    /// Records one latency; values beyond the range are clamped into it.
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(HIGHEST_US);
        self.0.saturating_record(us.clamp(LOWEST_US, HIGHEST_US));
    }

    /// Records one latency given in whole milliseconds (backend stamps).
    pub fn record_ms(&mut self, ms: i64) {
        self.record(Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }
}

/// One measured distribution, whatever recorded it.
#[derive(Debug, Clone)]
pub enum Dist {
    /// Measured here, exact to three significant digits.
    Hdr(Latencies),
    /// The engine's promotion-lag buckets; quantiles interpolate within a
    /// bucket and the maximum is only known as a bucket bound.
    Engine(LagSnapshot),
}

impl Dist {
    pub fn samples(&self) -> u64 {
        match self {
            Dist::Hdr(h) => h.len(),
            Dist::Engine(s) => s.count,
        }
    }

    /// The `q`-quantile in milliseconds; `None` when empty.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        match self {
            Dist::Hdr(h) if h.0.is_empty() => None,
            Dist::Hdr(h) => Some(h.0.value_at_quantile(q) as f64 / 1_000.0),
            Dist::Engine(s) => s.quantile_ms(q),
        }
    }

    /// The largest sample in milliseconds, when known exactly.
    pub fn max_ms(&self) -> Option<f64> {
        match self {
            Dist::Hdr(h) if h.0.is_empty() => None,
            Dist::Hdr(h) => Some(h.0.max() as f64 / 1_000.0),
            Dist::Engine(_) => None,
        }
    }

    /// Adds `other`'s samples (same kind; a mismatch is kept apart by the
    /// caller, so it is ignored here).
    pub fn merge(&mut self, other: &Dist) {
        match (self, other) {
            (Dist::Hdr(a), Dist::Hdr(b)) => {
                // Same bounds on both sides, so `add` cannot fail.
                if let Err(error) = a.0.add(&b.0) {
                    tracing::warn!(%error, "merging latency histograms");
                }
            }
            (Dist::Engine(a), Dist::Engine(b)) => {
                for (x, y) in a.buckets.iter_mut().zip(b.buckets) {
                    *x += y;
                }
                a.count += b.count;
                a.sum_ms += b.sum_ms;
            }
            _ => {}
        }
    }

    /// `(quantile, ms)` points from the median to 99.9 %, spaced evenly on
    /// the `1 / (1 - q)` log scale the chart uses (on to 99.99 % when there
    /// are samples enough).
    pub fn curve(&self) -> Vec<[f64; 2]> {
        let steps = if self.samples() >= 10_000 { 40 } else { 30 };
        let quantiles = (3..=steps).map(|k| 1.0 - 10f64.powf(-f64::from(k) / 10.0));
        std::iter::once(0.5)
            .chain(quantiles)
            .filter_map(|q| self.quantile_ms(q).map(|ms| [q, ms]))
            .collect()
    }
}

/// The engine's lag histogram between two snapshots of one engine.
pub fn lag_between(before: &LagSnapshot, after: &LagSnapshot) -> LagSnapshot {
    let mut delta = *after;
    for (d, b) in delta.buckets.iter_mut().zip(before.buckets) {
        *d = d.saturating_sub(b);
    }
    delta.count = delta.buckets.iter().sum();
    delta.sum_ms = after.sum_ms.saturating_sub(before.sum_ms);
    delta
}

/// The median of `values` (the mean of the middle two for an even count);
/// `None` when empty. NaNs sort last and are never picked unless all are.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Per second, never dividing by zero.
pub fn per_sec(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn hdr_quantiles_and_merge() -> anyhow::Result<()> {
        let mut a = Latencies::new()?;
        for ms in 1..=100 {
            a.record(Duration::from_millis(ms));
        }
        let mut dist = Dist::Hdr(a.clone());
        let p50 = dist.quantile_ms(0.5).unwrap_or_default();
        assert!((49.9..=50.1).contains(&p50), "{p50}");
        assert_eq!(dist.max_ms().map(f64::round), Some(100.0));
        dist.merge(&Dist::Hdr(a));
        assert_eq!(dist.samples(), 200);
        let curve = dist.curve();
        assert!(curve.windows(2).all(|w| w[0][1] <= w[1][1]), "monotone");
        Ok(())
    }

    #[test]
    fn engine_lag_deltas() {
        let before = LagSnapshot {
            buckets: [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            count: 1,
            sum_ms: 0,
        };
        let mut after = before;
        after.buckets[2] += 4;
        after.count += 4;
        after.sum_ms += 8;
        let delta = lag_between(&before, &after);
        assert_eq!((delta.count, delta.sum_ms, delta.buckets[0]), (4, 8, 0));
        let dist = Dist::Engine(delta);
        assert_eq!(dist.max_ms(), None);
        assert!(dist
            .quantile_ms(0.5)
            .is_some_and(|p| (1.0..=2.0).contains(&p)));
    }
}
