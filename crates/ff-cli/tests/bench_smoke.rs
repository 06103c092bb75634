//! `ff bench` at tiny sizes: every scenario runs end to end through the real
//! binary, and its JSON report carries the expected fields with positive
//! rates. A smoke test of the harness, not a measurement.

mod common;

use std::process::Command;

use common::Scratch;
use serde_json::Value;

/// Sizes small enough that a debug build finishes each scenario in seconds.
const TINY: &[&str] = &[
    "--runs",
    "1",
    "--warm-up",
    "50",
    "--workers",
    "2",
    "--count",
    "300",
    "--rate",
    "100",
    "--duration",
    "1",
    "--chains",
    "5",
    "--idle-chains",
    "2",
    "--chain-length",
    "3",
    "--flows",
    "2",
    "--fanout-width",
    "5",
    "--executions",
    "300",
    "--waves",
    "3",
    "--suspensions",
    "20",
];

/// Runs `ff bench SCENARIO --json` with the tiny sizes and `extra`.
fn bench(scenario: &str, extra: &[&str]) -> Value {
    let args: Vec<&str> = TINY.iter().chain(extra).copied().collect();
    bench_with(scenario, &args)
}

/// Runs `ff bench SCENARIO --json` with exactly `args`.
fn bench_with(scenario: &str, args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_ff"))
        .args(["bench", scenario, "--json"])
        .args(args)
        .env_remove("FF_DATABASE_URL")
        .output()
        .expect("run ff bench");
    assert!(
        output.status.success(),
        "ff bench {scenario} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "ff bench {scenario} printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The report's common fields, and each expected `scenario/variant` with a
/// positive median for every rate; returns the variants.
fn check(report: &Value, expected: &[&str]) -> Vec<Value> {
    assert_eq!(report["backend"]["name"], "sqlite");
    assert!(report["backend"]["version"]
        .as_str()
        .is_some_and(|v| v.starts_with('3')));
    assert_eq!(report["backend"]["synchronous"], "full");
    check_figures(report, expected)
}

/// The backend-independent part of [`check`].
fn check_figures(report: &Value, expected: &[&str]) -> Vec<Value> {
    assert!(report["machine"]["cores"].as_u64().is_some_and(|c| c >= 1));
    assert!(report["machine"]["rustc"].is_string());
    assert_eq!(report["runs"], 1);
    let variants = report["scenarios"].as_array().expect("scenarios").clone();
    let titles: Vec<String> = variants
        .iter()
        .map(|v| {
            format!(
                "{}/{}",
                v["scenario"].as_str().unwrap_or(""),
                v["variant"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(titles, expected);
    for v in &variants {
        let figures = v["figures"].as_array().expect("figures");
        assert!(!figures.is_empty(), "{v}");
        for f in figures
            .iter()
            .filter(|f| f["unit"].as_str().is_some_and(|u| u.ends_with("/s")))
        {
            assert!(
                f["median"].as_f64().is_some_and(|x| x > 0.0),
                "rate not positive: {f}"
            );
            assert_eq!(f["runs"].as_array().map(Vec::len), Some(1), "{f}");
        }
        for l in v["latencies"].as_array().expect("latencies") {
            assert!(l["samples"].as_u64().is_some_and(|n| n > 0), "{l}");
            assert!(l["p50_ms"].as_f64().is_some_and(|x| x >= 0.0), "{l}");
            assert!(l["p99_ms"].as_f64() >= l["p50_ms"].as_f64(), "{l}");
            assert!(!l["curve"].as_array().expect("curve").is_empty(), "{l}");
        }
    }
    variants
}

fn figure<'a>(variant: &'a Value, name: &str) -> &'a Value {
    variant["figures"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["name"] == name))
        .unwrap_or_else(|| panic!("no figure {name} in {variant}"))
}

fn latency<'a>(variant: &'a Value, name: &str) -> &'a Value {
    variant["latencies"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["name"] == name))
        .unwrap_or_else(|| panic!("no latency {name} in {variant}"))
}

#[test]
fn throughput_with_the_ceiling() {
    let report = bench("throughput", &["--ceiling", "--ceiling-txns", "20"]);
    let variants = check(
        &report,
        &["throughput/submit-then-drain", "throughput/concurrent"],
    );
    let ceiling = &report["ceiling"];
    assert_eq!(ceiling["synchronous"], "full");
    assert!(ceiling["single_per_sec"].as_f64().is_some_and(|x| x > 0.0));
    assert!(ceiling["batched_rows_per_sec"]
        .as_f64()
        .is_some_and(|x| x > 0.0));
    for name in ["jobs_per_sec", "submit_per_sec", "claim_complete_per_sec"] {
        let f = figure(&variants[0], name);
        assert_eq!(f["ceiling"], "batched");
        assert!(
            f["ceiling_fraction"].as_f64().is_some_and(|x| x > 0.0),
            "{f}"
        );
    }
}

#[test]
fn latency_at_a_fixed_rate() {
    let report = bench("latency", &[]);
    let variants = check(&report, &["latency/fixed-rate"]);
    let l = latency(&variants[0], "enqueue_to_start");
    assert_eq!(l["samples"], 100);
    assert!(l["max_ms"].as_f64() >= l["p99_ms"].as_f64(), "{l}");
    assert!(report["ceiling"].is_null());
}

#[test]
fn chains_idle_and_loaded() {
    let report = bench("chain", &[]);
    let variants = check(&report, &["chain/idle", "chain/loaded"]);
    for v in &variants {
        assert!(figure(v, "flows_per_sec")["median"].as_f64() > Some(0.0));
        let lag = latency(v, "promotion_lag");
        assert!(lag["samples"].as_u64().is_some_and(|n| n > 0), "{lag}");
        assert!(lag["max_ms"].is_null(), "the engine's buckets give no max");
    }
    // Every hop read back from the rows: five chains of three nodes, two
    // promotions each (the engine's histogram may miss some, see chain.rs).
    assert_eq!(latency(&variants[1], "promotion_lag_rows")["samples"], 10);
    assert_eq!(latency(&variants[0], "promotion_lag_rows")["samples"], 4);
}

#[test]
fn fanout_root_to_sink() {
    let report = bench("fanout", &[]);
    let variants = check(&report, &["fanout/loaded"]);
    assert_eq!(latency(&variants[0], "root_to_sink")["samples"], 2);
}

#[test]
fn soak_compares_the_first_wave_with_the_last() {
    let report = bench("soak", &[]);
    let variants = check(&report, &["soak/waves"]);
    for name in ["claim_first_wave", "claim_last_wave"] {
        latency(&variants[0], name);
    }
    let ratio = figure(&variants[0], "claim_p50_last_over_first");
    assert!(ratio["median"].as_f64().is_some_and(|x| x > 0.0), "{ratio}");
}

#[test]
fn suspend_measures_signal_to_resumed_claim() {
    let report = bench("suspend", &[]);
    let variants = check(&report, &["suspend/signal-to-resume"]);
    for name in ["signal_to_resumed_claim", "signal_call"] {
        let l = latency(&variants[0], name);
        assert_eq!(l["samples"].as_u64(), Some(20), "{l}");
    }
    figure(&variants[0], "suspend_cycles_per_sec");
}

#[test]
fn markdown_writes_the_page_and_its_chart() {
    let dir = Scratch::new("bench-markdown");
    let out = dir.0.to_str().expect("utf-8 temp dir");
    let report = bench("fanout", &["--markdown", "--markdown-dir", out]);
    check(&report, &["fanout/loaded"]);
    let page = std::fs::read_to_string(dir.path("benchmarks.md")).expect("the page");
    for needle in [
        "# Benchmarks",
        "## How to reproduce",
        "## Machine",
        "## SQLite",
        "benchmarks-latency.svg",
        "fanout/loaded",
    ] {
        assert!(page.contains(needle), "no {needle:?} in:\n{page}");
    }
    let chart = std::fs::read_to_string(dir.path("benchmarks-latency.svg")).expect("the chart");
    assert!(
        chart.starts_with("<svg") && chart.contains("<polyline"),
        "{chart}"
    );
}

/// The soak scenario at the size CI affords (20,000 executions in four
/// waves) on Postgres, each run in a scratch schema the bench drops.
#[test]
fn postgres_soak_smoke_of_20000() {
    let Some(url) = ff_testkit::harness::server_url("FF_TEST_POSTGRES_URL") else {
        return;
    };
    let report = bench_with(
        "soak",
        &[
            "--runs",
            "1",
            "--warm-up",
            "100",
            "--db",
            &url,
            "--executions",
            "20000",
            "--waves",
            "4",
            "--workers",
            "4",
        ],
    );
    assert_eq!(report["backend"]["name"], "postgres");
    let variants = check_figures(&report, &["soak/waves"]);
    let ratio = figure(&variants[0], "claim_p50_last_over_first");
    assert!(ratio["median"].as_f64().is_some_and(|x| x > 0.0), "{ratio}");
}

/// Idle and loaded chains on Postgres: cascades driven by its completions.
#[test]
fn postgres_chains_idle_and_loaded() {
    let Some(url) = ff_testkit::harness::server_url("FF_TEST_POSTGRES_URL") else {
        return;
    };
    let report = bench("chain", &["--db", &url]);
    let variants = check_figures(&report, &["chain/idle", "chain/loaded"]);
    assert_eq!(latency(&variants[1], "promotion_lag_rows")["samples"], 10);
}
