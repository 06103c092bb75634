//! The exclusive lock file `<db>.lock`: one process (one open backend) owns
//! the database. The lock is an OS file lock, so it dies with its process and
//! a stale file never blocks a restart; the pid inside only names the owner
//! in the error another opener gets.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ff_core::EngineError;

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct LockFile {
    file: File,
    path: PathBuf,
}

impl LockFile {
    /// Takes the lock of the database at `db_path`, or fails with
    /// `Conflict: database in use by pid N`.
    pub(crate) fn acquire(db_path: &Path) -> Result<Self, EngineError> {
        let path = lock_path(db_path);
        // Not truncated on open: the current owner's pid must survive until
        // we hold the lock ourselves.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(EngineError::backend)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(in_use(&path)),
            Err(TryLockError::Error(e)) => return Err(EngineError::backend(e)),
        }
        write_pid(&mut file).map_err(EngineError::backend)?;
        Ok(Self { file, path })
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes the
        // release independent of when the descriptor is finally closed.
        if let Err(e) = self.file.unlock() {
            tracing::warn!(path = %self.path.display(), error = %e, "unlocking the database lock file failed");
        }
    }
}

/// `<db path>.lock`, beside the database.
pub(crate) fn lock_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn write_pid(file: &mut File) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{}", std::process::id())?;
    file.flush()
}

/// The error for a lock held by someone else, naming the holder's pid. The
/// holder writes its pid right after locking, so an empty file means we raced
/// it: look again briefly.
fn in_use(path: &Path) -> EngineError {
    for _ in 0..20 {
        if let Some(pid) = read_pid(path) {
            return EngineError::conflict(format!("database in use by pid {pid}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    EngineError::conflict(format!(
        "database in use by another process (lock file {})",
        path.display()
    ))
}

fn read_pid(path: &Path) -> Option<u32> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
