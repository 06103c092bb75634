//! The attempt journal (`--journal FILE`): an append-only, fsynced record of
//! what the workers did, for crash tests to check against the database.
//!
//! One tab-separated line when an attempt starts and one when the backend
//! has answered its `complete` or `fail`:
//!
//! ```text
//! start <execution_id> <attempt> <lease_epoch> <start_ms> <namespace> <lease_token>
//! end   <execution_id> <attempt> <lease_epoch> <start_ms> <end_ms> <complete|fail> <outcome>
//! ```
//!
//! The start line holds the whole lease handle, secret token included, so a
//! crash test can replay a killed worker's late report; keep the file as
//! private as the database.
//!
//! `outcome` is `ok`, or the error's kind code (`lease_lost`, `not_active`,
//! ...). A line is acknowledged only once it is on disk, and the handler
//! waits for the `start` acknowledgement before working, so a crash leaves a
//! start without an end, never an end without its start.
//!
//! A dedicated thread batches the lines queued meanwhile into one write and
//! one fsync, so many concurrent handlers share each disk flush.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::mpsc as std_mpsc;

use anyhow::Context;
use ff_core::LeaseHandle;
use tokio::sync::oneshot;

type Ack = oneshot::Sender<Result<(), String>>;

/// The journal's writer thread, reached through a channel.
#[derive(Debug, Clone)]
pub struct Journal {
    lines: std_mpsc::Sender<(String, Ack)>,
}

impl Journal {
    /// Opens `path` for appending (creating it) and starts the writer thread,
    /// which ends once every `Journal` clone is dropped.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening the journal {}", path.display()))?;
        let (lines, queue) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("ff-journal".into())
            .spawn(move || write_loop(file, queue))
            .context("starting the journal thread")?;
        Ok(Self { lines })
    }

    /// Records that an attempt starts; returns once it is on disk.
    pub async fn start(&self, handle: &LeaseHandle, start_ms: i64) -> Result<(), String> {
        let line = format!(
            "start\t{}\t{}\t{}\t{start_ms}\t{}\t{}\n",
            handle.execution_id,
            handle.attempt,
            handle.lease_epoch,
            handle.namespace,
            handle.lease_token
        );
        self.append(line).await
    }

    /// Records how the backend answered the attempt; returns once on disk.
    pub async fn end(
        &self,
        handle: &LeaseHandle,
        start_ms: i64,
        end_ms: i64,
        op: &str,
        outcome: &str,
    ) -> Result<(), String> {
        let line = format!(
            "end\t{}\t{}\t{}\t{start_ms}\t{end_ms}\t{op}\t{outcome}\n",
            handle.execution_id, handle.attempt, handle.lease_epoch
        );
        self.append(line).await
    }

    async fn append(&self, line: String) -> Result<(), String> {
        let (ack, acked) = oneshot::channel();
        self.lines
            .send((line, ack))
            .map_err(|_| "the journal thread is gone".to_owned())?;
        acked
            .await
            .map_err(|_| "the journal thread is gone".to_owned())?
    }
}

/// Writes whatever is queued as one append and one fsync, then acknowledges
/// every line of the group.
fn write_loop(mut file: File, queue: std_mpsc::Receiver<(String, Ack)>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        group.extend(queue.try_iter());
        let text: String = group.iter().map(|(line, _)| line.as_str()).collect();
        let result = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("journal write failed: {e}"));
        for (_, ack) in group {
            // A handler that stopped waiting needs no answer.
            let _ = ack.send(result.clone());
        }
    }
}
