//! Running `ff` client commands against a live server and reading what
//! they printed.

#![allow(dead_code)] // Each test binary uses its own subset.

use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::serve_support::Server;

/// Runs `ff ARGS` against `server`; returns the output.
pub fn ff(server: &Server, args: &[&str]) -> Output {
    ff_at(&server.base, args)
}

pub fn ff_at(base: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ff"))
        .args(args)
        .env("FF_SERVER", base)
        .env_remove("FF_API_TOKEN")
        .env_remove("FF_NAMESPACE")
        .stdin(Stdio::null())
        .output()
        .expect("run ff")
}

/// Stdout of a successful run.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Stderr of a failed run.
pub fn fails(out: Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("utf-8")
}

/// The exit code and stderr of a run that failed with exactly `code`.
pub fn fails_with(code: i32, out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

pub fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}
