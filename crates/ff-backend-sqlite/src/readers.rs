//! The read pool: read-only connections used on tokio's blocking threads, so
//! reads never queue behind the writer. WAL gives each read a consistent
//! snapshot that includes every commit already answered.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use ff_core::EngineError;

use crate::{closed, SqlResult, BUSY_TIMEOUT};

/// Up to `size` connections, opened on first use and reused.
#[derive(Debug)]
pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
    closed: AtomicBool,
}

impl Readers {
    /// A pool over `path`; opens one connection now so that a file that
    /// cannot be read fails the open, not the first read.
    pub(crate) fn open(path: &Path, size: usize) -> Result<Self, EngineError> {
        let first = open_connection(path)?;
        Ok(Self {
            path: path.to_owned(),
            idle: Mutex::new(vec![first]),
            permits: Semaphore::new(size.max(1)),
            closed: AtomicBool::new(false),
        })
    }

    /// Runs `f` on a pooled connection on a blocking thread.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, EngineError> + Send + 'static,
    {
        let _permit = self.permits.acquire().await.map_err(|_| closed())?;
        let conn = match self.take() {
            Some(conn) => conn,
            None if self.closed.load(Ordering::Acquire) => return Err(closed()),
            None => {
                let path = self.path.clone();
                tokio::task::spawn_blocking(move || open_connection(&path))
                    .await
                    .map_err(EngineError::backend)??
            }
        };
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = f(&conn);
            (conn, result)
        })
        .await
        .map_err(EngineError::backend)?;
        self.give_back(conn);
        result
    }

    /// Closes idle connections and refuses later reads; a read in flight
    /// finishes and drops its connection.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.permits.close();
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn take(&self) -> Option<Connection> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn give_back(&self, conn: Connection) {
        if !self.closed.load(Ordering::Acquire) {
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
        }
    }
}

fn open_connection(path: &Path) -> Result<Connection, EngineError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).db()?;
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}
