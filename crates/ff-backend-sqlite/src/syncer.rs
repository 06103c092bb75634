//! The syncer thread: makes committed groups durable, then answers them.
//!
//! The writer commits with `synchronous=NORMAL`, which writes the WAL frames
//! without an fsync, hands the committed group here and starts the next
//! group at once. This thread fsyncs the WAL file once for every group that
//! committed meanwhile and only then announces their completions and
//! wake-ups and answers their callers. So an acknowledged write has reached
//! the disk, as with `synchronous=FULL`, while the fsync overlaps the next
//! group's work instead of stalling the writer. (Frames are appended in
//! commit order, so one fsync covers every group committed before it.)
//!
//! Readers may see a group a few milliseconds before its callers hear back
//! (it is committed, its fsync in flight), as with SQLite's own NORMAL mode;
//! what was acknowledged is always on disk.
//!
//! With [`Synchronous::Normal`] the fsync is skipped and answers go out as
//! soon as the group commits.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use ff_core::{CompletionPayload, EngineError};

use crate::command::Answer;
use crate::completions::Completions;
use crate::config::Synchronous;
use ff_backend_support::WorkSignal;

/// A committed group waiting to be made durable and answered.
pub(crate) struct Committed {
    pub(crate) answers: Vec<Box<dyn Answer>>,
    pub(crate) completions: Vec<CompletionPayload>,
    pub(crate) wake: bool,
}

/// The writer's handle on the syncer thread.
pub(crate) struct Syncer {
    tx: mpsc::Sender<Committed>,
    thread: JoinHandle<()>,
}

impl Syncer {
    /// Starts the thread. `db_path`'s WAL file must exist (the database is
    /// open in WAL mode and has been written).
    pub(crate) fn spawn(
        db_path: &Path,
        synchronous: Synchronous,
        completions: Completions,
        work: WorkSignal,
    ) -> Result<Self, EngineError> {
        let wal = match synchronous {
            Synchronous::Full => Some(open_wal(db_path)?),
            Synchronous::Normal => None,
        };
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ff-sqlite-syncer".to_owned())
            .spawn(move || run(rx, wal, completions, work))
            .map_err(EngineError::backend)?;
        Ok(Self { tx, thread })
    }

    /// Queues a committed group.
    pub(crate) fn submit(&self, group: Committed) {
        if let Err(mpsc::SendError(group)) = self.tx.send(group) {
            // The thread is gone (it only ends when this handle is dropped,
            // so this means it panicked): the callers must still hear back.
            let err = EngineError::backend("the SQLite syncer thread stopped");
            group.answers.into_iter().for_each(|a| a.send(Err(&err)));
        }
    }

    /// Answers every group already queued, then stops the thread.
    pub(crate) fn finish(self) {
        drop(self.tx);
        if self.thread.join().is_err() {
            tracing::error!("the SQLite syncer thread panicked");
        }
    }
}

fn open_wal(db_path: &Path) -> Result<File, EngineError> {
    let mut name = db_path.as_os_str().to_owned();
    name.push("-wal");
    // Write access: some platforms refuse to sync a read-only handle.
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&name)
        .map_err(EngineError::backend)
}

fn run(
    rx: mpsc::Receiver<Committed>,
    wal: Option<File>,
    completions: Completions,
    work: WorkSignal,
) {
    let mut groups = Vec::new();
    // After a failed fsync the kernel may have dropped the unwritten pages,
    // so a later fsync that succeeds proves nothing: every later answer is
    // an error until the backend is reopened.
    let mut failed: Option<String> = None;
    while let Ok(first) = rx.recv() {
        groups.push(first);
        groups.extend(rx.try_iter());
        if let (None, Some(file)) = (&failed, &wal) {
            if let Err(e) = file.sync_data() {
                tracing::error!(error = %e, "fsync of the SQLite write-ahead log failed");
                failed = Some(format!("fsync of the write-ahead log failed: {e}"));
            }
        }
        let synced = match &failed {
            Some(message) => Err(EngineError::backend(message.clone())),
            None => Ok(()),
        };
        let mut wake = false;
        for group in groups.drain(..) {
            match &synced {
                Ok(()) => {
                    completions.publish(group.completions);
                    wake |= group.wake;
                    group.answers.into_iter().for_each(|a| a.send(Ok(())));
                }
                Err(e) => group.answers.into_iter().for_each(|a| a.send(Err(e))),
            }
        }
        if wake {
            work.bump();
        }
    }
}
