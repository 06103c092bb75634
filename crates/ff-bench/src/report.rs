//! The report: every variant's runs reduced to medians, each figure set
//! against its ceiling, with the machine and build; rendered as text for
//! people and JSON for scripts (Markdown lives in `markdown`).

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::ceiling::{Ceiling, CeilingKind};
use crate::machine::{Build, Machine};
use crate::scenarios::{Measured, Sizes, Variant};
use crate::stats::{median, Dist};

/// Everything one `ff bench` invocation measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The command line that produced it.
    pub command: String,
    /// UTC, minute precision.
    pub generated_at: String,
    pub build: Build,
    pub machine: Machine,
    pub backend: Backend,
    /// Measured runs per variant; figures are their medians.
    pub runs: u32,
    pub sizes: Sizes,
    /// The median of every ceiling measured, one before each run.
    pub ceiling: Option<Ceiling>,
    pub scenarios: Vec<VariantReport>,
}

/// The backend the figures are for.
#[derive(Debug, Clone, Serialize)]
pub struct Backend {
    pub name: String,
    pub version: String,
    pub database: String,
    /// The durability setting the figures were measured with.
    pub synchronous: String,
}

/// One variant's figures over all runs.
#[derive(Debug, Clone, Serialize)]
pub struct VariantReport {
    pub scenario: &'static str,
    pub variant: &'static str,
    pub description: String,
    /// The median of the ceilings measured before this variant's runs.
    pub ceiling: Option<Ceiling>,
    pub figures: Vec<FigureReport>,
    pub latencies: Vec<LatencyReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FigureReport {
    pub name: &'static str,
    pub unit: &'static str,
    pub median: f64,
    /// Each run's value, in run order.
    pub runs: Vec<f64>,
    pub ceiling: Option<CeilingKind>,
    /// The median over runs of the run's value / the matching rate of the
    /// ceiling measured just before it, when measured.
    pub ceiling_fraction: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    pub name: &'static str,
    /// What one sample is.
    pub about: &'static str,
    /// Samples over all runs.
    pub samples: u64,
    /// Medians over runs of each run's percentile, in milliseconds.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// The largest sample of any run; `None` when only a bucket bound is
    /// known (the engine's histogram).
    pub max_ms: Option<f64>,
    /// The median over runs of the run's p50 / the single-commit p50 of the
    /// ceiling measured just before it: how many raw durable commits the
    /// median sample is worth.
    pub ceiling_multiple: Option<f64>,
    /// `[quantile, ms]` of all runs merged, for the chart.
    pub curve: Vec<[f64; 2]>,
}

impl VariantReport {
    /// Reduces `runs` of `variant` to medians. `ceilings` holds the ceiling
    /// measured before each run (empty without `--ceiling`); a figure's
    /// fraction is the median of each run's figure over its own ceiling.
    pub fn aggregate(
        variant: Variant,
        sizes: &Sizes,
        runs: &[Measured],
        ceilings: &[Ceiling],
    ) -> Self {
        let mut names: Vec<(&'static str, &'static str, Option<CeilingKind>)> = Vec::new();
        for f in runs.iter().flat_map(|r| &r.figures) {
            if !names.iter().any(|(name, _, _)| *name == f.name) {
                names.push((f.name, f.unit, f.ceiling));
            }
        }
        let figures = names
            .into_iter()
            .map(|(name, unit, kind)| {
                let (mut values, mut fractions) = (Vec::new(), Vec::new());
                for (i, run) in runs.iter().enumerate() {
                    let Some(f) = run.figures.iter().find(|f| f.name == name) else {
                        continue;
                    };
                    values.push(f.value);
                    if let (Some(kind), Some(c)) = (kind, ceilings.get(i)) {
                        fractions.push(f.value / c.rate(kind).max(f64::MIN_POSITIVE));
                    }
                }
                FigureReport {
                    name,
                    unit,
                    median: median(&values).unwrap_or_default(),
                    runs: values,
                    ceiling: kind,
                    ceiling_fraction: median(&fractions),
                }
            })
            .collect();

        let mut latencies = Vec::new();
        let first = runs.first().map(|r| r.dists.as_slice()).unwrap_or_default();
        for named in first {
            let per_run: Vec<(usize, &Dist)> = runs
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    r.dists
                        .iter()
                        .find(|d| d.name == named.name)
                        .map(|d| (i, &d.dist))
                })
                .collect();
            let quantile = |q: f64| {
                let values: Vec<f64> = per_run
                    .iter()
                    .filter_map(|(_, d)| d.quantile_ms(q))
                    .collect();
                median(&values)
            };
            let multiples: Vec<f64> = per_run
                .iter()
                .filter_map(|(i, d)| {
                    let c = ceilings.get(*i)?;
                    Some(d.quantile_ms(0.5)? / c.single_commit_p50_ms.max(1e-6))
                })
                .collect();
            let mut merged = named.dist.clone();
            for (_, d) in per_run.iter().skip(1) {
                merged.merge(d);
            }
            latencies.push(LatencyReport {
                name: named.name,
                about: named.about,
                samples: merged.samples(),
                p50_ms: quantile(0.5),
                p95_ms: quantile(0.95),
                p99_ms: quantile(0.99),
                max_ms: per_run
                    .iter()
                    .filter_map(|(_, d)| d.max_ms())
                    .max_by(f64::total_cmp),
                ceiling_multiple: median(&multiples),
                curve: merged.curve(),
            });
        }
        Self {
            scenario: variant.scenario(),
            variant: variant.name(),
            description: variant.describe(sizes),
            ceiling: Ceiling::median_of(ceilings),
            figures,
            latencies,
        }
    }

    /// `scenario/variant`.
    pub fn title(&self) -> String {
        format!("{}/{}", self.scenario, self.variant)
    }
}

impl Report {
    pub fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// The human summary printed to stdout.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.headline());
        let _ = writeln!(out, "machine: {}", self.machine_line());
        if let Some(c) = &self.ceiling {
            let _ = writeln!(
                out,
                "ceiling (median of the per-run measurements): {}",
                ceiling_line(c)
            );
        }
        for v in &self.scenarios {
            let _ = writeln!(out, "\n{} — {}", v.title(), v.description);
            if let Some(c) = &v.ceiling {
                let _ = writeln!(
                    out,
                    "  ceiling before these runs: single {} txn/s (commit p50 {}), batched {} rows/s",
                    num(c.single_per_sec),
                    ms(Some(c.single_commit_p50_ms)),
                    num(c.batched_rows_per_sec)
                );
            }
            for f in &v.figures {
                let runs: Vec<String> = f.runs.iter().map(|r| figure(*r, f.unit)).collect();
                let _ = write!(
                    out,
                    "  {:<28} {:>12} {:<7} [{}]",
                    f.name,
                    figure(f.median, f.unit),
                    f.unit,
                    runs.join(" ")
                );
                if let (Some(kind), Some(frac)) = (f.ceiling, f.ceiling_fraction) {
                    let _ = write!(out, "  {} of the {} ceiling", percent(frac), kind.label());
                }
                out.push('\n');
            }
            for l in &v.latencies {
                let _ = write!(
                    out,
                    "  {:<28} p50 {}  p95 {}  p99 {}  max {}  (n={})",
                    l.name,
                    ms(l.p50_ms),
                    ms(l.p95_ms),
                    ms(l.p99_ms),
                    ms(l.max_ms),
                    l.samples
                );
                if let Some(m) = l.ceiling_multiple {
                    let _ = write!(out, "  p50 = {}× a raw commit", num(m));
                }
                out.push('\n');
            }
        }
        out
    }

    pub fn headline(&self) -> String {
        let git = self
            .build
            .git
            .as_deref()
            .map(|g| format!(", git {g}"))
            .unwrap_or_default();
        format!(
            "FlowFabric {} ({} build{git}) · {} {} · durability: {} · {} · median of {} run(s)",
            self.build.flowfabric,
            self.build.profile,
            self.backend.name,
            self.backend.version,
            self.backend.synchronous,
            self.backend.database,
            self.runs
        )
    }

    pub fn machine_line(&self) -> String {
        let m = &self.machine;
        let memory = m
            .memory_mib
            .map(|mib| format!("{:.1} GiB", mib as f64 / 1024.0))
            .unwrap_or_else(|| "unknown memory".to_owned());
        let load = m
            .load_average
            .map(|l| format!(", load average {l:.2} at start"))
            .unwrap_or_default();
        format!(
            "{} cores ({}), {memory}, {}, {}{load}",
            m.cores, m.cpu, m.os, m.rustc
        )
    }
}

pub fn ceiling_line(c: &Ceiling) -> String {
    format!(
        "plain rusqlite, WAL, synchronous={}: single {} txn/s (commit p50 {}, p99 {}), batched {} rows/s ({} rows/txn)",
        c.synchronous,
        num(c.single_per_sec),
        ms(Some(c.single_commit_p50_ms)),
        ms(Some(c.single_commit_p99_ms)),
        num(c.batched_rows_per_sec),
        c.batch_size
    )
}

/// A figure for people: thousands separated from 100 up, three
/// significant digits below.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "—".to_owned();
    }
    if x.abs() >= 100.0 {
        let digits = format!("{:.0}", x.abs());
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if x < 0.0 {
            grouped.insert(0, '-');
        }
        grouped
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A figure in its unit: counts whole, the rest as [`num`].
pub fn figure(value: f64, unit: &str) -> String {
    if unit == "count" {
        format!("{value:.0}")
    } else {
        num(value)
    }
}

pub fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), |v| format!("{} ms", num(v)))
}

pub fn percent(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

/// Now, as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3_600,
        rem % 3_600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_people() {
        assert_eq!(num(1_234_567.4), "1,234,567");
        assert_eq!(num(123.0), "123");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(0.456), "0.46");
        assert_eq!(num(f64::NAN), "—");
        assert_eq!(percent(0.1234), "12.3%");
    }

    #[test]
    fn utc_dates() {
        let now = utc_now();
        assert_eq!(now.len(), "2026-01-01 00:00 UTC".len(), "{now}");
        assert!(now.starts_with("20"), "{now}");
    }
}
