//! What the figures were measured on: the machine, the build and the backend.
//! Every field is best-effort: a value that cannot be read says `unknown`
//! rather than failing the benchmark.

use std::process::Command;

use serde::Serialize;

/// The machine a benchmark ran on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical cores available to this process.
    pub cores: usize,
    pub cpu: String,
    pub memory_mib: Option<u64>,
    /// Distribution and kernel, e.g. `Debian GNU/Linux 13 (trixie), linux 6.1 x86_64`.
    pub os: String,
    /// `rustc --version` as found on PATH when the benchmark ran.
    pub rustc: String,
    /// The 1-minute load average when the benchmark started: other work on
    /// the machine skews every figure.
    pub load_average: Option<f64>,
}

/// The build and backend that produced the figures.
#[derive(Debug, Clone, Serialize)]
pub struct Build {
    pub flowfabric: &'static str,
    /// `git describe --always --dirty` of the working directory, if any.
    pub git: Option<String>,
    /// `release` or `debug`: debug figures are not comparable.
    pub profile: &'static str,
}

impl Machine {
    pub fn detect() -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu: cpu_model().unwrap_or_else(|| "unknown".to_owned()),
            memory_mib: memory_mib(),
            os: os(),
            rustc: command_line("rustc", &["--version"]).unwrap_or_else(|| "unknown".to_owned()),
            load_average: load_average(),
        }
    }
}

impl Build {
    pub fn detect() -> Self {
        Self {
            flowfabric: env!("CARGO_PKG_VERSION"),
            git: command_line("git", &["describe", "--always", "--dirty"]),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        }
    }
}

/// The first field of /proc/loadavg.
fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// `MemTotal` of /proc/meminfo, in MiB.
fn memory_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
}

fn os() -> String {
    let distro = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|k| k.trim().to_owned());
    let platform = format!("{} {}", std::env::consts::OS, std::env::consts::ARCH);
    match (distro, kernel) {
        (Some(d), Some(k)) => format!("{d}, {platform} {k}"),
        (Some(d), None) => format!("{d}, {platform}"),
        (None, Some(k)) => format!("{platform} {k}"),
        (None, None) => platform,
    }
}

/// The first line a command prints, when it runs and succeeds.
fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    text.lines()
        .next()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
}
