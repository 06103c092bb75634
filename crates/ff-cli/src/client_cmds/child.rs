//! One attempt of `ff worker -- CMD`: CMD runs with the payload on its stdin
//! and `FF_EXECUTION_ID`, `FF_ATTEMPT`, `FF_KIND`, `FF_LANE`, `FF_NAMESPACE`
//! in its environment. Exit 0: its stdout is the result (JSON as is, other
//! text as a JSON string, nothing as `null`). Exit 75 (`EX_TEMPFAIL`, "try
//! again later", as mail delivery agents use it) fails the attempt
//! retryably, and so does death by a signal (a crash, the OOM killer); any
//! other exit fails the execution for good, unless `--other-exits retry`.
//! Either failure carries the tail of stderr as its error.
//!
//! CMD runs in a process group of its own, so a stop signal reaches all of
//! it (a shell and what it started), and a terminal's Ctrl-C reaches only
//! `ff worker`, which forwards it as SIGTERM.

use std::collections::HashSet;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ff_core::{JsonText, Limits};
use ff_sdk::{Fail, HandlerError, JobContext, Release, StopReason};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// How much of stderr an error keeps: its end.
pub const STDERR_TAIL: usize = 4 * 1024;
/// How long output is still read after CMD exited (a background process it
/// left may hold the pipes open).
const DRAIN: Duration = Duration::from_secs(2);

/// Process groups of running commands, so a forced exit can kill them.
#[derive(Debug, Clone, Default)]
pub struct Groups(Arc<Mutex<HashSet<u32>>>);

impl Groups {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<u32>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends `signal` (e.g. `KILL`) to every running command's group.
    pub fn signal_all(&self, signal: &str) {
        for pgid in self.lock().iter() {
            signal_group(*pgid, signal);
        }
    }
}

/// A running command's process group: killed when dropped before the
/// command exited (the handler was aborted).
struct Group {
    pgid: Option<u32>,
    groups: Groups,
}

impl Group {
    fn new(pgid: Option<u32>, groups: &Groups) -> Self {
        if let Some(pgid) = pgid {
            groups.lock().insert(pgid);
        }
        Self {
            pgid,
            groups: groups.clone(),
        }
    }

    fn signal(&self, signal: &str) {
        if let Some(pgid) = self.pgid {
            signal_group(pgid, signal);
        }
    }

    /// The leader exited: its id may be reused, so it is never signalled again.
    fn exited(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            self.groups.lock().remove(&pgid);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal("KILL");
        self.exited();
    }
}

/// `kill -SIGNAL -- -PGID`: the standard tool, since this crate forbids the
/// `unsafe` a direct `kill(2)` needs.
fn signal_group(pgid: u32, signal: &str) {
    let sent = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(err) = sent {
        tracing::warn!(%err, pgid, signal, "could not signal the command");
    }
}

/// The exit code that asks for a retry (`EX_TEMPFAIL` of sysexits.h).
pub const EXIT_RETRY: i32 = 75;

/// What an exit other than 0 and [`EXIT_RETRY`] means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OtherExits {
    /// The execution fails for good.
    Permanent,
    /// The attempt fails retryably, as with exit 75.
    Retry,
}

/// How an attempt ended, as the handler reports it.
#[derive(Debug)]
pub enum Ended {
    Completed(JsonText),
    /// A retryable failure, with its error.
    Retry(String),
    /// A permanent failure, with its error.
    Fail(String),
    /// Handed back: stopped for a shutdown, cancelled or lease lost.
    Release,
}

impl Ended {
    /// A few words for the worker's `-v` line.
    pub fn summary(&self) -> &'static str {
        match self {
            Self::Completed(_) => "completed",
            Self::Retry(_) => "failed (retryable)",
            Self::Fail(_) => "failed (permanent)",
            Self::Release => "handed back",
        }
    }

    /// The error text, when it failed.
    pub fn error(&self) -> Option<&str> {
        match self {
            Self::Retry(error) | Self::Fail(error) => Some(error),
            Self::Completed(_) | Self::Release => None,
        }
    }

    pub fn into_result(self) -> Result<JsonText, HandlerError> {
        match self {
            Self::Completed(result) => Ok(result),
            Self::Retry(error) => Err(HandlerError::msg(error)),
            Self::Fail(error) => Err(Fail::permanent(error).into()),
            Self::Release => Err(Release.into()),
        }
    }
}

/// Runs `cmd` for the attempt in `ctx`.
pub async fn run(cmd: &[String], ctx: JobContext, groups: &Groups, other: OtherExits) -> Ended {
    let Some((program, args)) = cmd.split_first() else {
        return Ended::Fail("no command to run".to_owned());
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env("FF_EXECUTION_ID", ctx.id().to_string())
        .env("FF_ATTEMPT", ctx.attempt().to_string())
        .env("FF_KIND", ctx.kind())
        .env("FF_LANE", ctx.lane())
        .env("FF_NAMESPACE", &ctx.claimed().namespace)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Ended::Retry(format!("cannot start `{program}`: {e}")),
    };
    let mut group = Group::new(child.id(), groups);

    if let Some(mut stdin) = child.stdin.take() {
        let payload = ctx.payload_json().as_str().as_bytes().to_vec();
        // A command that never reads its stdin is fine: ignore the broken pipe.
        tokio::spawn(async move {
            let _ = stdin.write_all(&payload).await;
            let _ = stdin.shutdown().await;
        });
    }
    let max_result = Limits::default().max_result_bytes;
    let stdout = Capture::spawn(child.stdout.take(), Keep::Head(max_result));
    let stderr = Capture::spawn(child.stderr.take(), Keep::Tail(STDERR_TAIL));

    let mut stopped = None;
    let status = tokio::select! {
        status = child.wait() => status,
        reason = ctx.stopped() => {
            tracing::info!(?reason, "forwarding SIGTERM to the command");
            stopped = Some(reason);
            group.signal("TERM");
            child.wait().await
        }
    };
    let status = match status {
        Ok(status) => status,
        Err(e) => return Ended::Retry(format!("waiting for `{program}`: {e}")),
    };
    group.exited();
    let (stdout, stdout_cut) = stdout.finish().await;
    let (stderr, _) = stderr.finish().await;

    match stopped {
        // Stopped for a shutdown and did not finish its work: hand the
        // execution back, the attempt unused.
        Some(StopReason::Shutdown) if !status.success() => return Ended::Release,
        Some(StopReason::Shutdown) | None => {}
        // Cancelled or lease lost: nothing will be recorded for this attempt.
        Some(_) => return Ended::Release,
    }
    if !status.success() {
        let error = failure_text(program, status, &stderr);
        return match status.code() {
            Some(code) if code != EXIT_RETRY && other == OtherExits::Permanent => {
                Ended::Fail(error)
            }
            // Exit 75, any exit under `--other-exits retry`, or no exit code
            // at all: killed by a signal, which says nothing of the input.
            _ => Ended::Retry(error),
        };
    }
    if stdout_cut {
        return Ended::Fail(format!(
            "`{program}` wrote more than the {} KiB a result may hold",
            max_result / 1024
        ));
    }
    Ended::Completed(result_of(&stdout))
}

/// The error of a failed attempt: the exit status and the tail of stderr.
fn failure_text(program: &str, status: ExitStatus, stderr: &[u8]) -> String {
    let tail = String::from_utf8_lossy(stderr);
    // The cut may have split a character: drop its remains.
    let tail = tail.trim_start_matches('\u{FFFD}').trim_end();
    if tail.is_empty() {
        format!("`{program}` exited with {status} (stderr was empty)")
    } else {
        format!("`{program}` exited with {status}; stderr:\n{tail}")
    }
}

/// Stdout as the result: JSON as written, other text as a JSON string
/// (one trailing newline dropped), nothing at all as `null`.
pub fn result_of(stdout: &[u8]) -> JsonText {
    let text = String::from_utf8_lossy(stdout);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return JsonText::null();
    }
    match JsonText::parse(trimmed) {
        Ok(json) => json,
        Err(_) => {
            let line = text
                .strip_suffix("\r\n")
                .or_else(|| text.strip_suffix('\n'))
                .unwrap_or(&text);
            JsonText::from_value(line)
        }
    }
}

/// Which part of a stream to keep.
#[derive(Debug, Clone, Copy)]
enum Keep {
    /// The first `n` bytes (more marks the capture as cut).
    Head(usize),
    /// The last `n` bytes.
    Tail(usize),
}

/// A pipe read to its end in the background, into a buffer the caller can
/// take even while a straggler still holds the pipe open.
struct Capture {
    buffer: Arc<Mutex<(Vec<u8>, bool)>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Capture {
    fn spawn(pipe: Option<impl AsyncRead + Unpin + Send + 'static>, keep: Keep) -> Self {
        let buffer = Arc::new(Mutex::new((Vec::new(), false)));
        let task = pipe.map(|mut pipe| {
            let buffer = buffer.clone();
            tokio::spawn(async move {
                let mut chunk = vec![0u8; 64 * 1024];
                while let Ok(n) = pipe.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    let mut guard = buffer.lock().unwrap_or_else(|p| p.into_inner());
                    let (data, cut) = &mut *guard;
                    match keep {
                        Keep::Head(max) => {
                            let room = max.saturating_sub(data.len());
                            data.extend_from_slice(&chunk[..n.min(room)]);
                            *cut |= n > room;
                        }
                        Keep::Tail(max) => {
                            data.extend_from_slice(&chunk[..n]);
                            if data.len() > max {
                                let excess = data.len() - max;
                                data.drain(..excess);
                                *cut = true;
                            }
                        }
                    }
                }
            })
        });
        Self { buffer, task }
    }

    /// What was read, once the pipe closed or [`DRAIN`] passed.
    async fn finish(mut self) -> (Vec<u8>, bool) {
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(DRAIN, &mut task).await.is_err() {
                task.abort();
            }
        }
        let mut guard = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_becomes_the_result() {
        assert_eq!(result_of(b"{\"a\": 1}\n").as_str(), "{\"a\": 1}");
        assert_eq!(result_of(b"hello\n").as_str(), "\"hello\"");
        assert_eq!(result_of(b"two\nlines\n").as_str(), "\"two\\nlines\"");
        assert_eq!(result_of(b"  \n").as_str(), "null");
        assert_eq!(result_of(b"42").as_str(), "42");
    }
}
