//! Prometheus metrics in the text exposition format: request counts and
//! latencies per route, queue depth per namespace, lane and state, and the
//! engine's counters. Kept in one place so handlers never emit their own.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use ff_core::flow_control::{KeyPattern, PolicySpec};
use ff_core::{EngineBackend, Limits, DEFAULT_NAMESPACE};
use ff_engine::{EngineStats, StatsSnapshot};

use crate::state::AppState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (bound, count) in BUCKETS.iter().zip(self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Requests {
    counts: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    namespaces: BTreeSet<String>,
}

/// The server's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<Requests>,
    engine: Option<Arc<EngineStats>>,
}

impl Metrics {
    pub fn new(engine: Option<Arc<EngineStats>>) -> Self {
        let mut requests = Requests::default();
        requests.namespaces.insert(DEFAULT_NAMESPACE.to_owned());
        Self {
            requests: Mutex::new(requests),
            engine,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Requests> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(
        &self,
        method: &str,
        route: &str,
        status: u16,
        seconds: f64,
        namespace: Option<&str>,
    ) {
        let mut requests = self.lock();
        *requests
            .counts
            .entry((method.to_owned(), route.to_owned(), status))
            .or_insert(0) += 1;
        requests
            .latency
            .entry(route.to_owned())
            .or_default()
            .observe(seconds);
        // Only valid names become labels, and only so many of them.
        if let Some(ns) =
            namespace.filter(|ns| Limits::default().check_name("namespace", ns).is_ok())
        {
            if !requests.namespaces.contains(ns) && requests.namespaces.len() < 1_000 {
                requests.namespaces.insert(ns.to_owned());
            }
        }
    }

    /// Renders every metric; queue depth is read from the backend now.
    pub async fn render(&self, engine: &dyn EngineBackend) -> String {
        let (counts, latency, namespaces) = {
            let r = self.lock();
            (r.counts.clone(), r.latency.clone(), r.namespaces.clone())
        };
        let mut out = String::new();
        out.push_str("# HELP ff_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE ff_http_requests_total counter\n");
        for ((method, route, status), n) in &counts {
            let _ = writeln!(
                out,
                "ff_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP ff_http_request_duration_seconds HTTP request latency by route.\n");
        out.push_str("# TYPE ff_http_request_duration_seconds histogram\n");
        for (route, histogram) in &latency {
            histogram.render(
                &mut out,
                "ff_http_request_duration_seconds",
                &format!("route=\"{route}\""),
            );
        }
        out.push_str(
            "# HELP ff_executions Executions by namespace, lane and state (queue depth).\n",
        );
        out.push_str("# TYPE ff_executions gauge\n");
        for ns in &namespaces {
            match engine.count_by_lane_and_state(ns).await {
                Ok(counts) => {
                    for c in counts {
                        let _ = writeln!(
                            out,
                            "ff_executions{{namespace=\"{ns}\",lane=\"{}\",state=\"{}\"}} {}",
                            c.lane, c.state, c.count
                        );
                    }
                }
                Err(err) => {
                    tracing::warn!(namespace = %ns, error = %err, "queue depth unavailable")
                }
            }
        }
        render_flow_control(&mut out, engine, &namespaces).await;
        if let Some(stats) = &self.engine {
            render_engine(&mut out, &stats.snapshot());
        }
        out
    }
}

/// Candidates passed over by limit, what runs under each exact-key
/// concurrency policy, and what each budget has used.
async fn render_flow_control(
    out: &mut String,
    engine: &dyn EngineBackend,
    namespaces: &BTreeSet<String>,
) {
    let passed = engine.passed_over();
    out.push_str(
        "# HELP ff_claims_passed_over_total Candidates claims passed over, by the limit that held them.\n",
    );
    out.push_str("# TYPE ff_claims_passed_over_total counter\n");
    for (reason, n) in [
        ("concurrency", passed.concurrency),
        ("rate", passed.rate),
        ("budget", passed.budget),
    ] {
        let _ = writeln!(
            out,
            "ff_claims_passed_over_total{{reason=\"{reason}\"}} {n}"
        );
    }
    let mut running = String::new();
    let mut used = String::new();
    for ns in namespaces {
        let policies = match engine.policies(ns).await {
            Ok(policies) => policies,
            Err(err) => {
                tracing::warn!(namespace = %ns, error = %err, "policies unavailable");
                continue;
            }
        };
        for policy in policies {
            match &policy.spec {
                PolicySpec::Concurrency(c) => {
                    let KeyPattern::Exact(key) = &c.pattern else {
                        continue;
                    };
                    if let Ok(n) = engine.concurrency_running(ns, key).await {
                        let _ = writeln!(
                            running,
                            "ff_concurrency_running{{namespace=\"{ns}\",policy=\"{}\",key=\"{key}\"}} {n}",
                            policy.name
                        );
                    }
                }
                PolicySpec::Budget(_) => {
                    if let Ok(status) = engine.budget(ns, &policy.name).await {
                        for (dimension, n) in &status.used {
                            let _ = writeln!(
                                used,
                                "ff_budget_used{{namespace=\"{ns}\",policy=\"{}\",dimension=\"{dimension}\"}} {n}",
                                policy.name
                            );
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out.push_str(
        "# HELP ff_concurrency_running Executions running under an exact-key concurrency policy.\n",
    );
    out.push_str("# TYPE ff_concurrency_running gauge\n");
    out.push_str(&running);
    out.push_str("# HELP ff_budget_used A budget's usage in its current window, by dimension.\n");
    out.push_str("# TYPE ff_budget_used gauge\n");
    out.push_str(&used);
}

fn render_engine(out: &mut String, s: &StatsSnapshot) {
    out.push_str("# HELP ff_completions_total Terminal transitions seen by the engine.\n");
    out.push_str("# TYPE ff_completions_total counter\n");
    for (outcome, n) in [
        ("completed", s.completed),
        ("failed", s.failed),
        ("cancelled", s.cancelled),
        ("skipped", s.skipped),
    ] {
        let _ = writeln!(out, "ff_completions_total{{outcome=\"{outcome}\"}} {n}");
    }
    let counters = [
        (
            "ff_leases_expired_total",
            "Leases and attempt timeouts expired.",
            s.leases_expired,
        ),
        (
            "ff_scheduled_promoted_total",
            "Scheduled executions made ready.",
            s.scheduled_promoted,
        ),
        (
            "ff_deadlines_expired_total",
            "Executions failed by their deadline.",
            s.deadlines_expired,
        ),
        (
            "ff_suspensions_timed_out_total",
            "Suspensions whose timeout policy was applied.",
            s.suspensions_timed_out,
        ),
        (
            "ff_service_errors_total",
            "Errors inside background services.",
            s.service_errors,
        ),
        (
            "ff_cascades_total",
            "Completions cascaded through their flow.",
            s.cascades,
        ),
        (
            "ff_cascade_promoted_total",
            "Flow nodes promoted by cascades.",
            s.cascade_promoted,
        ),
        (
            "ff_cascade_skipped_total",
            "Flow nodes skipped by cascades.",
            s.cascade_skipped,
        ),
        (
            "ff_cascade_errors_total",
            "Cascades left to the reconciler.",
            s.cascade_errors,
        ),
        (
            "ff_reconciled_total",
            "Outbox entries cascaded by the reconciler.",
            s.reconciled,
        ),
        (
            "ff_outbox_trimmed_total",
            "Dispatched outbox entries deleted.",
            s.outbox_trimmed,
        ),
    ];
    for (name, help, n) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {n}"
        );
    }
    let lag = &s.promotion_lag;
    out.push_str("# HELP ff_promotion_lag_seconds Parent commit to child claimable.\n");
    out.push_str("# TYPE ff_promotion_lag_seconds histogram\n");
    for (bound_ms, count) in lag.cumulative() {
        let le = if bound_ms.is_finite() {
            (bound_ms / 1000.0).to_string()
        } else {
            "+Inf".to_owned()
        };
        let _ = writeln!(
            out,
            "ff_promotion_lag_seconds_bucket{{le=\"{le}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "ff_promotion_lag_seconds_sum {}",
        lag.sum_ms as f64 / 1000.0
    );
    let _ = writeln!(out, "ff_promotion_lag_seconds_count {}", lag.count);
}

/// Records every request's route, status and latency.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let namespace = req
        .uri()
        .path()
        .strip_prefix("/v1/namespaces/")
        .and_then(|rest| rest.split('/').next())
        .map(str::to_owned);
    let response = next.run(req).await;
    state.metrics.record(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
        namespace.as_deref(),
    );
    response
}
