//! WAL checkpoints off the writer thread.
//!
//! SQLite's automatic checkpoint runs inside a COMMIT, so every few thousand
//! frames the writer would stall copying pages and waiting on two fsyncs.
//! Instead the writer connection has auto-checkpointing off, and this thread
//! runs PASSIVE checkpoints on its own connection, concurrently with the
//! writer. A passive checkpoint cannot rewind the WAL while the writer keeps
//! it busy (the rewind happens when a write starts on a fully copied WAL), so
//! once the WAL passes [`RESTART_FRAMES`] the writer itself runs a RESTART
//! checkpoint between two groups: most pages are already copied by then, so
//! that stall is short and rare.

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use ff_core::EngineError;

use crate::{SqlResult, BUSY_TIMEOUT};

/// WAL size (frames of one page) past which the writer rewinds the WAL.
const RESTART_FRAMES: i64 = 16_384;

/// Checkpoints run at most this often, so each copies a useful amount.
const INTERVAL: Duration = Duration::from_millis(100);

/// How long a RESTART waits for readers still on the WAL before giving up
/// until [`RESTART_RETRY`] has passed: the writer must not stall behind a
/// long read.
const RESTART_WAIT: Duration = Duration::from_millis(20);
const RESTART_RETRY: Duration = Duration::from_millis(250);

/// The handle on the checkpoint thread; dropping it stops the thread.
pub(crate) struct Checkpointer {
    nudge: mpsc::SyncSender<()>,
    wal_frames: Arc<AtomicI64>,
    thread: Option<JoinHandle<()>>,
    /// When the writer last tried a RESTART that found readers in the way.
    restart_busy_at: Cell<Option<Instant>>,
}

impl Checkpointer {
    pub(crate) fn spawn(db_path: &Path) -> Result<Self, EngineError> {
        let conn = Connection::open(db_path).db()?;
        conn.busy_timeout(BUSY_TIMEOUT).db()?;
        let (nudge, nudged) = mpsc::sync_channel(1);
        let wal_frames = Arc::new(AtomicI64::new(0));
        let frames = wal_frames.clone();
        let thread = std::thread::Builder::new()
            .name("ff-sqlite-checkpoint".to_owned())
            .spawn(move || run(conn, nudged, frames))
            .map_err(EngineError::backend)?;
        Ok(Self {
            nudge,
            wal_frames,
            thread: Some(thread),
            restart_busy_at: Cell::new(None),
        })
    }

    /// Tells the thread new frames were committed; never blocks.
    pub(crate) fn nudge(&self) {
        let _ = self.nudge.try_send(());
    }

    /// Run by the writer between groups: rewinds a WAL grown past
    /// [`RESTART_FRAMES`].
    pub(crate) fn restart_if_large(&self, writer: &Connection) {
        if self.wal_frames.load(Ordering::Relaxed) < RESTART_FRAMES
            || self
                .restart_busy_at
                .get()
                .is_some_and(|at| at.elapsed() < RESTART_RETRY)
        {
            return;
        }
        let restarted = writer
            .busy_timeout(RESTART_WAIT)
            .db()
            .and_then(|()| checkpoint(writer, "RESTART"));
        if let Err(e) = writer.busy_timeout(BUSY_TIMEOUT).db() {
            tracing::warn!(error = %e, "restoring the writer's busy timeout failed");
        }
        match restarted {
            Ok((false, _)) => {
                self.wal_frames.store(0, Ordering::Relaxed);
                self.restart_busy_at.set(None);
            }
            Ok((true, _)) => {
                tracing::debug!("WAL restart checkpoint found readers in the way");
                self.restart_busy_at.set(Some(Instant::now()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "WAL restart checkpoint failed");
                self.restart_busy_at.set(Some(Instant::now()));
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Replacing the sender closes the channel the thread waits on.
        self.nudge = mpsc::sync_channel(1).0;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the SQLite checkpoint thread panicked");
            }
        }
    }
}

fn run(conn: Connection, nudged: mpsc::Receiver<()>, wal_frames: Arc<AtomicI64>) {
    let mut last = Instant::now();
    while nudged.recv().is_ok() {
        let wait = INTERVAL.saturating_sub(last.elapsed());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        // Coalesce the nudges that arrived while waiting.
        while nudged.try_recv().is_ok() {}
        last = Instant::now();
        match checkpoint(&conn, "PASSIVE") {
            Ok((_, frames)) => wal_frames.store(frames, Ordering::Relaxed),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}

/// Runs `PRAGMA wal_checkpoint(mode)`; returns (busy, frames in the WAL).
fn checkpoint(conn: &Connection, mode: &str) -> Result<(bool, i64), EngineError> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok((row.get::<_, i64>(0)? != 0, row.get::<_, i64>(1)?))
    })
    .db()
}
