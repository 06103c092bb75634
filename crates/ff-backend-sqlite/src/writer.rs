//! The writer thread: the only connection that writes, and its group commit.
//!
//! Commands arrive over a channel. The thread blocks for the first, drains up
//! to `max_group_commit` more that are already queued, and runs them all in
//! one `BEGIN IMMEDIATE` transaction, each inside its own savepoint so that a
//! failing command rolls back alone. It commits once (one fsync for the whole
//! group) and only then answers the callers and publishes completions and
//! wake-ups: nothing is announced that did not commit.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use ff_core::clock::Millis;
use ff_core::{CompletionPayload, EngineError, Execution, ExecutionId, SharedClock};

use crate::checkpointer::Checkpointer;
use crate::completions;
use crate::lock::LockFile;
use crate::rows::{self, Stamp};
use crate::syncer::{Committed, Syncer};
use crate::{closed, SqlResult};

/// Opens the write connection: WAL, a statement cache large enough for every
/// write statement. Commits do not fsync (`synchronous=NORMAL`): the syncer
/// thread does, off this thread, before anyone is answered.
pub(crate) fn open_connection(path: &Path) -> Result<Connection, EngineError> {
    let conn = Connection::open(path).db()?;
    conn.busy_timeout(Duration::from_secs(5)).db()?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .db()?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(EngineError::backend(format!(
            "could not switch {} to WAL (journal_mode is {mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "NORMAL").db()?;
    // The checkpointer thread copies the WAL back instead (see checkpointer.rs).
    conn.pragma_update(None, "wal_autocheckpoint", 0).db()?;
    conn.pragma_update(None, "temp_store", "MEMORY").db()?;
    conn.pragma_update(None, "cache_size", -32_768).db()?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// The handle write commands get: the transaction's connection, the
/// command's `now`, and what to announce after the commit.
pub(crate) struct WriteCtx<'c> {
    conn: &'c Connection,
    /// Read once per command from the configured clock.
    pub(crate) now: Millis,
    completions: Vec<CompletionPayload>,
    wake: bool,
}

impl<'c> WriteCtx<'c> {
    pub(crate) fn conn(&self) -> &'c Connection {
        self.conn
    }

    /// The execution and its stamp, or `NotFound`.
    pub(crate) fn load(&self, id: ExecutionId) -> Result<(Execution, Stamp), EngineError> {
        rows::load_stored(self.conn, id)?.ok_or_else(|| EngineError::execution_not_found(id))
    }

    /// Stores a new execution.
    pub(crate) fn insert(&mut self, exec: &Execution) -> Result<Stamp, EngineError> {
        let stamp = rows::insert_execution(self.conn, exec)?;
        self.wake |= exec.is_claimable(self.now);
        Ok(stamp)
    }

    /// Writes `exec` back if a rule changed it since `before`; a transition
    /// into a terminal state records its outbox entry in the same
    /// transaction. Returns whether it wrote.
    pub(crate) fn save(&mut self, exec: &Execution, before: &Stamp) -> Result<bool, EngineError> {
        if !before.changed(exec) {
            return Ok(false);
        }
        rows::update_execution(self.conn, before, exec)?;
        if !before.state().is_terminal() && exec.state.is_terminal() {
            let payload = completions::record(self.conn, exec, self.now)?;
            self.completions.push(payload);
        }
        self.wake |= exec.is_claimable(self.now);
        Ok(true)
    }
}

/// A queued command, type-erased so one channel carries every answer type.
trait Job: Send {
    /// Runs the command; its answer waits for the commit.
    fn run(self: Box<Self>, ctx: &mut WriteCtx<'_>) -> Box<dyn Answer>;
    /// Answers without running (the transaction could not start).
    fn abort(self: Box<Self>, err: &EngineError);
}

pub(crate) trait Answer: Send {
    /// False rolls the command's savepoint back.
    fn keeps(&self) -> bool;
    /// Delivers the answer once the group's fate is known.
    fn send(self: Box<Self>, commit: Result<(), &EngineError>);
}

struct Command<T, F> {
    f: F,
    tx: oneshot::Sender<Result<T, EngineError>>,
}

impl<T, F> Job for Command<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut WriteCtx<'_>) -> Result<T, EngineError> + Send + 'static,
{
    fn run(self: Box<Self>, ctx: &mut WriteCtx<'_>) -> Box<dyn Answer> {
        let Command { f, tx } = *self;
        // A panicking command must not take the writer (and every later
        // command) down with it; its savepoint is rolled back like an error.
        let result = catch_unwind(AssertUnwindSafe(|| f(ctx)))
            .unwrap_or_else(|_| Err(EngineError::backend("a write command panicked")));
        Box::new(Reply { result, tx })
    }

    fn abort(self: Box<Self>, err: &EngineError) {
        let _ = self.tx.send(Err(copy_error(err)));
    }
}

struct Reply<T> {
    result: Result<T, EngineError>,
    tx: oneshot::Sender<Result<T, EngineError>>,
}

impl<T: Send> Answer for Reply<T> {
    fn keeps(&self) -> bool {
        self.result.is_ok()
    }

    fn send(self: Box<Self>, commit: Result<(), &EngineError>) {
        let answer = match (commit, self.result) {
            (Err(e), Ok(_)) => Err(copy_error(e)),
            (_, result) => result,
        };
        let _ = self.tx.send(answer);
    }
}

/// One group failure goes to every caller of the group.
fn copy_error(err: &EngineError) -> EngineError {
    match err {
        EngineError::Unavailable { message } => EngineError::Unavailable {
            message: message.clone(),
        },
        EngineError::Backend(source) => EngineError::backend(source.to_string()),
        other => EngineError::backend(other.to_string()),
    }
}

enum Msg {
    Job(Box<dyn Job>),
    Shutdown(oneshot::Sender<()>),
}

/// The sending side, held by the backend.
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
}

/// What the writer thread owns.
pub(crate) struct WriterSetup {
    pub(crate) conn: Connection,
    pub(crate) lock: LockFile,
    pub(crate) clock: SharedClock,
    pub(crate) max_group_commit: usize,
    pub(crate) syncer: Syncer,
    pub(crate) checkpointer: Checkpointer,
}

impl Writer {
    /// Starts the writer thread.
    pub(crate) fn spawn(setup: WriterSetup) -> Result<Self, EngineError> {
        let max_group = setup.max_group_commit.max(1);
        // Bounded, so a flood of callers waits for the writer instead of
        // growing an unbounded queue.
        let (tx, rx) = mpsc::channel(max_group.saturating_mul(2).max(64));
        std::thread::Builder::new()
            .name("ff-sqlite-writer".to_owned())
            .spawn(move || run(setup, rx, max_group))
            .map_err(EngineError::backend)?;
        Ok(Self { tx })
    }

    /// Runs `f` in the next group transaction and answers after the commit.
    /// An `Err` from `f` rolls back only this command; an answer that must
    /// keep its writes while reporting a domain error (an expiry applied by
    /// fencing, then `LeaseLost`) is carried inside `T`.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, EngineError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Job(Box::new(Command { f, tx })))
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// Lets the commands already queued commit, then stops the thread, which
    /// closes the connection and releases the lock before answering.
    pub(crate) async fn shutdown(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

fn run(setup: WriterSetup, mut rx: mpsc::Receiver<Msg>, max_group: usize) {
    let WriterSetup {
        conn,
        lock,
        clock,
        syncer,
        checkpointer,
        ..
    } = setup;
    let mut jobs: Vec<Box<dyn Job>> = Vec::with_capacity(max_group);
    let mut shutdown = None;
    while shutdown.is_none() {
        match rx.blocking_recv() {
            Some(Msg::Job(job)) => jobs.push(job),
            Some(Msg::Shutdown(ack)) => shutdown = Some(ack),
            None => break,
        }
        while shutdown.is_none() && jobs.len() < max_group {
            match rx.try_recv() {
                Ok(Msg::Job(job)) => jobs.push(job),
                Ok(Msg::Shutdown(ack)) => shutdown = Some(ack),
                Err(_) => break,
            }
        }
        if !jobs.is_empty() {
            let group = Group {
                conn: &conn,
                clock: &clock,
                syncer: &syncer,
            };
            if group.commit(&mut jobs) {
                checkpointer.nudge();
            }
            checkpointer.restart_if_large(&conn);
        }
    }
    // Commands sent after the shutdown are dropped unanswered; their callers
    // see the backend as closed.
    rx.close();
    drop(rx);
    syncer.finish();
    drop(checkpointer);
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the SQLite write connection failed");
    }
    drop(lock);
    if let Some(ack) = shutdown {
        let _ = ack.send(());
    }
}

struct Group<'a> {
    conn: &'a Connection,
    clock: &'a SharedClock,
    syncer: &'a Syncer,
}

impl Group<'_> {
    /// Runs and commits `jobs` (draining it); a committed group goes to the
    /// syncer, which answers once it is durable; a failed one is answered
    /// here. Returns whether the group committed.
    fn commit(&self, jobs: &mut Vec<Box<dyn Job>>) -> bool {
        let mut ctx = WriteCtx {
            conn: self.conn,
            now: 0,
            completions: Vec::new(),
            wake: false,
        };
        if let Err(e) = self.exec("BEGIN IMMEDIATE") {
            jobs.drain(..).for_each(|job| job.abort(&e));
            return false;
        }
        let mut answers = Vec::with_capacity(jobs.len());
        let mut pending = jobs.drain(..);
        let mut failure = None;
        for job in pending.by_ref() {
            if let Err(e) = self.exec("SAVEPOINT command") {
                job.abort(&e);
                failure = Some(e);
                break;
            }
            ctx.now = self.clock.now_ms();
            let (announced, wake) = (ctx.completions.len(), ctx.wake);
            let answer = job.run(&mut ctx);
            let closed = if answer.keeps() {
                self.exec("RELEASE command")
            } else {
                ctx.completions.truncate(announced);
                ctx.wake = wake;
                self.exec("ROLLBACK TO command")
                    .and_then(|()| self.exec("RELEASE command"))
            };
            answers.push(answer);
            if let Err(e) = closed {
                failure = Some(e);
                break;
            }
        }
        let outcome = match failure {
            Some(e) => Err(e),
            None => self.exec("COMMIT"),
        };
        match outcome {
            Ok(()) => {
                tracing::trace!(commands = answers.len(), "group committed");
                self.syncer.submit(Committed {
                    answers,
                    completions: ctx.completions,
                    wake: ctx.wake,
                });
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, commands = answers.len(), "group transaction failed");
                if let Err(rollback) = self.exec("ROLLBACK") {
                    tracing::warn!(error = %rollback, "rolling back the failed group failed");
                }
                pending.for_each(|job| job.abort(&e));
                answers.into_iter().for_each(|a| a.send(Err(&e)));
                false
            }
        }
    }

    fn exec(&self, sql: &str) -> Result<(), EngineError> {
        self.conn.prepare_cached(sql).db()?.execute([]).db()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ff_core::{lifecycle, JsonText, ManualClock, SubmitRequest};
    use ff_testkit::TempDir;
    use futures::StreamExt;

    use super::*;
    use crate::completions::Completions;
    use crate::config::Synchronous;
    use crate::leases::WorkSignal;
    use crate::migrations;

    fn start(dir: &TempDir) -> (Writer, Completions) {
        let path = dir.path().join("ff.db");
        let lock = LockFile::acquire(&path).unwrap();
        let mut conn = open_connection(&path).unwrap();
        migrations::migrate(&mut conn).unwrap();
        let completions = Completions::new();
        let syncer = Syncer::spawn(
            &path,
            Synchronous::Full,
            completions.clone(),
            WorkSignal::new(),
        )
        .unwrap();
        let writer = Writer::spawn(WriterSetup {
            conn,
            lock,
            clock: Arc::new(ManualClock::default()),
            max_group_commit: 16,
            syncer,
            checkpointer: Checkpointer::spawn(&path).unwrap(),
        })
        .unwrap();
        (writer, completions)
    }

    /// Inserts an execution and cancels it (a terminal transition with an
    /// outbox entry), then answers with `outcome`.
    fn cancel_new(
        ctx: &mut WriteCtx<'_>,
        outcome: Result<(), EngineError>,
    ) -> Result<ExecutionId, EngineError> {
        let req = SubmitRequest::new("a", "job", JsonText::null());
        let mut exec = Execution::new(ExecutionId::new(), req, ctx.now);
        let before = ctx.insert(&exec)?;
        lifecycle::cancel(&mut exec, ctx.now);
        ctx.save(&exec, &before)?;
        outcome.map(|()| exec.id)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_command_rolls_back_alone_within_its_group() {
        let dir = TempDir::new("sqlite-writer");
        let (writer, completions) = start(&dir);
        let mut events = completions.subscribe();
        // Hold the writer so the next three commands queue into one group.
        let hold = writer.write(|_| {
            std::thread::sleep(Duration::from_millis(200));
            Ok(())
        });
        let failing = writer.write(|ctx| cancel_new(ctx, Err(EngineError::conflict("no"))));
        let panicking = writer.write(|ctx| -> Result<(), EngineError> {
            cancel_new(ctx, Ok(()))?;
            panic!("a bug in a command");
        });
        let kept = writer.write(|ctx| cancel_new(ctx, Ok(())));
        let (hold, failing, panicking, kept) = tokio::join!(hold, failing, panicking, kept);
        hold.unwrap();
        assert_eq!(failing.unwrap_err().kind(), ff_core::ErrorKind::Conflict);
        assert_eq!(panicking.unwrap_err().kind(), ff_core::ErrorKind::Backend);
        let kept = kept.unwrap();

        let (executions, outbox) = writer
            .write(|ctx| {
                let count = |sql: &str| -> Result<i64, EngineError> {
                    ctx.conn().query_row(sql, [], |row| row.get(0)).db()
                };
                Ok((
                    count("SELECT COUNT(*) FROM executions")?,
                    count("SELECT COUNT(*) FROM outbox")?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(
            (executions, outbox),
            (1, 1),
            "only the kept command's rows are stored"
        );
        let event = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            event.execution_id, kept,
            "rolled-back completions are never announced"
        );
        writer.shutdown().await;
    }
}
