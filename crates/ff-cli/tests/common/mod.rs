//! Shared by the crash tests: a scratch directory, running `ff demo` as a
//! child process, reading its attempt journal, and checking the database.

#![allow(dead_code)] // Each test binary uses its own subset.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ff_backend_sqlite::{SqliteBackend, SqliteConfig};
use ff_core::execution::AttemptEnd;
use ff_core::{Execution, ExecutionId, LeaseHandle, LeaseToken, ListFilter, ReadOps, State};

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("ff-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the scratch dir");
        Self(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `ff demo` with `args`, its output kept in files of `scratch` (a pipe
/// nobody reads could fill and stall the child).
pub fn spawn_demo(scratch: &Scratch, run: &str, args: &[&str]) -> Child {
    spawn_demo_with_env(scratch, run, args, &[])
}

/// [`spawn_demo`] with extra environment variables.
pub fn spawn_demo_with_env(
    scratch: &Scratch,
    run: &str,
    args: &[impl AsRef<std::ffi::OsStr>],
    env: &[(&str, &str)],
) -> Child {
    let stdout =
        std::fs::File::create(scratch.path(&format!("{run}.stdout"))).expect("stdout file");
    let stderr =
        std::fs::File::create(scratch.path(&format!("{run}.stderr"))).expect("stderr file");
    Command::new(env!("CARGO_BIN_EXE_ff"))
        .arg("demo")
        .args(args)
        .arg("--quiet")
        .env_remove("FF_DATABASE_URL")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start ff demo")
}

/// Waits for `child` to exit successfully within `limit`; returns its stdout.
pub fn wait_success(mut child: Child, scratch: &Scratch, run: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            let read = |ext: &str| {
                std::fs::read_to_string(scratch.path(&format!("{run}.{ext}"))).unwrap_or_default()
            };
            assert!(
                status.success(),
                "{run} exited with {status}\nstdout:\n{}\nstderr:\n{}",
                read("stdout"),
                read("stderr")
            );
            return read("stdout");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{run} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One `end` line: how the backend answered an attempt's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    pub op: String,
    pub outcome: String,
}

/// One attempt of one execution, as the journal names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttemptKey {
    pub execution_id: ExecutionId,
    pub attempt: u32,
    pub lease_epoch: u64,
}

/// The journal: attempts started, and how those that ended were answered.
#[derive(Debug, Default)]
pub struct Journal {
    pub starts: Vec<AttemptKey>,
    /// Each started attempt's namespace and lease token.
    pub leases: HashMap<AttemptKey, (String, LeaseToken)>,
    pub ends: HashMap<AttemptKey, End>,
}

impl Journal {
    /// Reads the journal at `path`; a missing file is an empty journal and a
    /// torn last line is ignored.
    pub fn read(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut journal = Self::default();
        for line in text.lines() {
            let fields: Vec<&str> = line.split('\t').collect();
            let handle = |f: &[&str]| -> Option<AttemptKey> {
                Some(AttemptKey {
                    execution_id: f.get(1)?.parse().ok()?,
                    attempt: f.get(2)?.parse().ok()?,
                    lease_epoch: f.get(3)?.parse().ok()?,
                })
            };
            match (fields.first(), handle(&fields)) {
                (Some(&"start"), Some(h)) if fields.len() == 7 => {
                    if let Ok(token) = fields[6].parse() {
                        journal.starts.push(h);
                        journal.leases.insert(h, (fields[5].to_owned(), token));
                    }
                }
                (Some(&"end"), Some(h)) if fields.len() == 8 => {
                    let end = End {
                        op: fields[6].to_owned(),
                        outcome: fields[7].to_owned(),
                    };
                    assert!(
                        journal.ends.insert(h, end).is_none(),
                        "two end lines for {h:?}"
                    );
                }
                _ => {}
            }
        }
        journal
    }

    /// The journals of several processes as one (each attempt is one
    /// process's, so no two journals share a line's handle).
    pub fn merge(journals: impl IntoIterator<Item = Journal>) -> Self {
        let mut all = Self::default();
        for journal in journals {
            all.starts.extend(journal.starts);
            all.leases.extend(journal.leases);
            for (handle, end) in journal.ends {
                assert!(
                    all.ends.insert(handle, end).is_none(),
                    "two ends for {handle:?}"
                );
            }
        }
        all
    }

    /// Attempts that started and never reported: the ones a kill cut short.
    pub fn unfinished(&self) -> Vec<AttemptKey> {
        self.starts
            .iter()
            .filter(|h| !self.ends.contains_key(h))
            .copied()
            .collect()
    }

    /// The whole lease handle of a started attempt, as its worker held it.
    pub fn handle(&self, key: &AttemptKey) -> LeaseHandle {
        let (namespace, token) = self.leases.get(key).expect("a started attempt");
        LeaseHandle {
            execution_id: key.execution_id,
            namespace: namespace.clone(),
            attempt: key.attempt,
            lease_epoch: key.lease_epoch,
            lease_token: *token,
        }
    }

    /// Accepted completes per execution.
    pub fn accepted_completes(&self) -> HashMap<ExecutionId, usize> {
        let mut counts = HashMap::new();
        for (handle, end) in &self.ends {
            if end.op == "complete" && end.outcome == "ok" {
                *counts.entry(handle.execution_id).or_default() += 1;
            }
        }
        counts
    }
}

/// Polls the journal until `ready` holds, or panics after `limit`.
pub fn wait_for_journal(path: &Path, limit: Duration, ready: impl Fn(&Journal) -> bool) -> Journal {
    let deadline = Instant::now() + limit;
    loop {
        let journal = Journal::read(path);
        if ready(&journal) {
            return journal;
        }
        assert!(
            Instant::now() < deadline,
            "the journal never got there: {} starts, {} ends",
            journal.starts.len(),
            journal.ends.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens the demo's database with the wall clock, as the demo does.
pub async fn open(db: &Path) -> SqliteBackend {
    SqliteBackend::open(SqliteConfig::new(db))
        .await
        .expect("open the demo database")
}

/// Every execution of the demo lane.
pub async fn demo_executions(backend: &dyn ReadOps) -> Vec<Execution> {
    let mut filter = ListFilter {
        lane: Some("demo".into()),
        limit: 1000,
        ..ListFilter::default()
    };
    let mut all = Vec::new();
    loop {
        let page = backend
            .list_executions(&filter)
            .await
            .expect("list executions");
        all.extend(page.items);
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => return all,
        }
    }
}

/// The recorded end of the attempt `handle` names, if the execution has it.
pub fn attempt_end(exec: &Execution, handle: &AttemptKey) -> Option<AttemptEnd> {
    exec.attempts
        .iter()
        .find(|a| a.attempt == handle.attempt && a.lease_epoch == handle.lease_epoch)
        .and_then(|a| a.end)
}

/// The checks every crash test ends with, on the final database and journal:
/// `count` executions, each terminal; every completed one completed by
/// exactly one attempt, whose complete the journal shows accepted exactly
/// once; execution 0 (the always-failing one) failed and nothing else did;
/// every attempt the kill cut short (`killed`) is closed, by the lease
/// expiry — or, when the kill fell between the backend's answer and the
/// journal's `end` line, by its own report, which then counts as that
/// execution's one accepted complete.
pub fn check_final_state(
    execs: &[Execution],
    journal: &Journal,
    killed: &[AttemptKey],
    count: usize,
) {
    assert_eq!(execs.len(), count, "no execution lost, none added");
    let accepted = journal.accepted_completes();
    let killed: HashSet<AttemptKey> = killed.iter().copied().collect();
    let mut failed = 0;
    for exec in execs {
        assert!(
            exec.state.is_terminal(),
            "{} is still {}",
            exec.id,
            exec.state
        );
        let journaled = accepted.get(&exec.id).copied().unwrap_or(0);
        let completions: Vec<AttemptKey> = exec
            .attempts
            .iter()
            .filter(|a| a.end == Some(AttemptEnd::Completed))
            .map(|a| AttemptKey {
                execution_id: exec.id,
                attempt: a.attempt,
                lease_epoch: a.lease_epoch,
            })
            .collect();
        match exec.state {
            State::Completed => {
                assert_eq!(completions.len(), 1, "{} completed by one attempt", exec.id);
                let winner = completions[0];
                if killed.contains(&winner) {
                    assert_eq!(
                        journaled, 0,
                        "{}: accepted just before the kill, never again",
                        exec.id
                    );
                } else {
                    assert_eq!(
                        journaled, 1,
                        "{}: one accepted complete in the journal",
                        exec.id
                    );
                    let end = journal.ends.get(&winner);
                    assert_eq!(
                        end.map(|e| e.outcome.as_str()),
                        Some("ok"),
                        "{}: the journal names the winning attempt",
                        exec.id
                    );
                }
            }
            State::Failed => {
                failed += 1;
                assert!(
                    completions.is_empty() && journaled == 0,
                    "{} failed yet a complete was accepted",
                    exec.id
                );
            }
            other => panic!("{} ended {other}, which the demo never causes", exec.id),
        }
    }
    assert_eq!(failed, 1, "exactly the always-failing execution failed");
    let by_id: HashMap<ExecutionId, &Execution> = execs.iter().map(|e| (e.id, e)).collect();
    for handle in &killed {
        let exec = by_id
            .get(&handle.execution_id)
            .expect("a killed attempt's execution exists");
        let end = attempt_end(exec, handle);
        assert!(
            matches!(
                end,
                Some(AttemptEnd::LeaseExpired | AttemptEnd::Completed | AttemptEnd::Failed { .. })
            ),
            "killed attempt {handle:?} ended {end:?}"
        );
    }
}
