//! The raw ceiling: what plain SQLite does on this machine for the shape of
//! work the backend does, measured on a separate file with the backend's
//! pragmas (WAL, the same `synchronous`). A benchmark prints its figures as a
//! fraction of these, so a reader sees how much of the disk and the library
//! the engine leaves on the table.
//!
//! The work is a job's life reduced to its rows: one row inserted, then the
//! same row updated (the state change a claim or a completion writes).
//! Measured two ways, matching how the backend commits:
//! - **single**: one INSERT + UPDATE per transaction, the cost of a lone
//!   write that must be durable before it is answered;
//! - **batched**: the same pair for `batch_size` rows per transaction, the
//!   best a group commit can amortize the commit over.
//!
//! No engine code runs here: no rules, no outbox, no indexes beyond the
//! primary key. It is an upper bound, not a target.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rusqlite::{params, Connection};

use crate::opener::Synchronous;

/// The SQLite backend's settings for its connections, repeated here
/// because the ceiling must open its file the way the backend does: how
/// long a connection waits on another's lock, and the writer's page cache.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const CACHE_KIB: i64 = 8_192;

/// How much work each half of the ceiling does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CeilingCounts {
    /// Transactions of one INSERT + UPDATE.
    pub single_txns: u32,
    /// Transactions of `batch_size` INSERT + UPDATE pairs.
    pub batched_txns: u32,
    /// Rows per batched transaction.
    pub batch_size: u32,
}

impl Default for CeilingCounts {
    fn default() -> Self {
        Self {
            single_txns: 1_000,
            batched_txns: 1_000,
            batch_size: 100,
        }
    }
}

/// What the ceiling measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CeilingRates {
    pub synchronous: Synchronous,
    pub counts: CeilingCounts,
    /// Single-row transactions committed per second.
    pub single_per_sec: f64,
    /// Rows (INSERT + UPDATE pairs) per second in batched transactions.
    pub batched_rows_per_sec: f64,
    /// Median and 99th percentile of one single-row transaction, BEGIN to
    /// durable COMMIT: the floor under any one-write latency.
    pub single_commit_p50: Duration,
    pub single_commit_p99: Duration,
}

/// Measures the ceiling on a new database at `path` (which must not exist;
/// its `-wal` and `-shm` companions are created beside it). Blocking: run it
/// on a blocking thread. The caller deletes the files afterwards.
pub fn measure(
    path: &Path,
    synchronous: Synchronous,
    counts: CeilingCounts,
) -> anyhow::Result<CeilingRates> {
    if path.exists() {
        bail!("{} exists; the ceiling needs a new file", path.display());
    }
    let mut conn = open(path, synchronous)?;
    let mut next_id = 0i64;
    // Warm-up: the first transactions grow the WAL and fill the statement
    // cache; neither is what the ceiling is about.
    for _ in 0..counts.single_txns.min(50) {
        next_id += 1;
        pairs(&mut conn, next_id, 1)?;
    }

    let mut commits = Vec::with_capacity(counts.single_txns as usize);
    let started = Instant::now();
    for _ in 0..counts.single_txns {
        next_id += 1;
        let at = Instant::now();
        pairs(&mut conn, next_id, 1)?;
        commits.push(at.elapsed());
    }
    let single_elapsed = started.elapsed();

    let batch = i64::from(counts.batch_size.max(1));
    let started = Instant::now();
    for _ in 0..counts.batched_txns {
        pairs(&mut conn, next_id + 1, batch)?;
        next_id += batch;
    }
    let batched_elapsed = started.elapsed();

    commits.sort_unstable();
    Ok(CeilingRates {
        synchronous,
        counts,
        single_per_sec: per_sec(u64::from(counts.single_txns), single_elapsed),
        batched_rows_per_sec: per_sec(
            u64::from(counts.batched_txns) * batch as u64,
            batched_elapsed,
        ),
        single_commit_p50: percentile(&commits, 0.50),
        single_commit_p99: percentile(&commits, 0.99),
    })
}

/// Opens `path` the way the backend's writer does: WAL, the durability of
/// `synchronous` applied by SQLite itself at each commit, the writer's cache
/// and temp-store settings. (The backend commits with `NORMAL` and fsyncs on
/// its syncer thread for `Full`; a WAL commit under `synchronous=FULL` does
/// the same fsync inline.) Auto-checkpointing stays on, since no checkpointer
/// thread runs here.
fn open(path: &Path, synchronous: Synchronous) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!(
            "could not switch {} to WAL (journal_mode is {mode})",
            path.display()
        );
    }
    let level = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", level)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    // A job row's typical columns: enough text that the page work is real.
    conn.execute_batch(
        "CREATE TABLE jobs (
             id         INTEGER PRIMARY KEY,
             lane       TEXT    NOT NULL,
             payload    TEXT    NOT NULL,
             state      TEXT    NOT NULL,
             attempt    INTEGER NOT NULL,
             updated_at INTEGER NOT NULL
         );",
    )?;
    Ok(conn)
}

/// One transaction: rows `first..first + n` inserted as ready, then each
/// updated to completed.
fn pairs(conn: &mut Connection, first: i64, n: i64) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO jobs (id, lane, payload, state, attempt, updated_at)
                 VALUES (?1, 'bench', '{\"i\":0}', 'ready', 0, ?2)",
        )?;
        let mut update = tx.prepare_cached(
            "UPDATE jobs SET state = 'completed', attempt = 1, updated_at = ?2 WHERE id = ?1",
        )?;
        for id in first..first + n {
            insert.execute(params![id, id])?;
            update.execute(params![id, id + 1])?;
        }
    }
    tx.commit()
}

fn per_sec(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(f64::EPSILON)
}

/// The `q`-quantile of sorted durations (nearest rank); zero when empty.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_positive_rates_on_a_new_file() {
        let dir = crate::harness::Scratch::new("sqlite-ceiling").expect("scratch dir");
        let path = dir.path().join("ceiling.db");
        let counts = CeilingCounts {
            single_txns: 20,
            batched_txns: 5,
            batch_size: 10,
        };
        let rates = measure(&path, Synchronous::Normal, counts).expect("measured");
        assert!(rates.single_per_sec > 0.0 && rates.batched_rows_per_sec > 0.0);
        assert!(rates.single_commit_p50 <= rates.single_commit_p99);
        let err = measure(&path, Synchronous::Normal, counts).expect_err("file exists");
        assert!(err.to_string().contains("needs a new file"), "{err:#}");
    }

    #[test]
    fn nearest_rank_percentiles() {
        let ms: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&ms, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&ms, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
