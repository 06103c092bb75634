//! The writer thread: the only connection that writes, and its group commit.
//!
//! Commands arrive over a channel. The thread blocks for the first, drains up
//! to `max_group_commit` more that are already queued, and runs them in one
//! `BEGIN IMMEDIATE` transaction, each inside its own savepoint so that a
//! failing command rolls back alone, until they are done or the group has
//! run `max_group_duration` holding a flow member's completion (what is left
//! opens the next group: a long group would hold back the announcement its
//! children wait for, while other work gains from long groups). It commits
//! once and hands the group to the syncer, which makes it durable (one fsync
//! for the whole group) and only then answers the callers and publishes
//! completions and wake-ups: nothing is announced that is not on disk.
//!
//! Flow members' cascades skip the queue ([`Writer::write_urgent`]): they
//! wait in a queue of their own that the thread looks at before every
//! command, joining the group under way. Such a cascade is what makes a
//! flow's next node claimable, so its wait is promotion lag, while the
//! claims and completions it would queue behind lose nothing by going a
//! command later; and a claim behind it in the same group finds the node it
//! promoted.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use ff_core::{EngineError, SharedClock};

use crate::checkpointer::Checkpointer;
use crate::command::{Command, Job, WriteCtx};
use crate::lock::LockFile;
use crate::row_cache::RowCache;
use crate::syncer::{Committed, Syncer};
use crate::{closed, SqlResult, BUSY_TIMEOUT};

/// The write connection's page cache, in KiB. Each commit ends with SQLite
/// truncating the page cache to the file's size, which can scan the cache's
/// whole hash table (`pcache1Truncate`), so every group commit pays for a
/// larger cache; the pages the writer keeps touching (the claim index's
/// ready range, the newest rows, the outbox's tail) fit in this.
pub(crate) const CACHE_KIB: i64 = 8_192;

/// Opens the write connection: WAL, a statement cache large enough for every
/// write statement. Commits do not fsync (`synchronous=NORMAL`): the syncer
/// thread does, off this thread, before anyone is answered.
pub(crate) fn open_connection(path: &Path) -> Result<Connection, EngineError> {
    let conn = Connection::open(path).db()?;
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
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
    conn.pragma_update(None, "cache_size", -CACHE_KIB).db()?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

enum Msg {
    Job(Box<dyn Job>),
    /// Urgent commands are waiting; only wakes a thread blocked on an
    /// empty queue.
    Wake,
    Shutdown(oneshot::Sender<()>),
}

/// The sending side, held by the backend.
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
    urgent: Arc<Urgent>,
}

/// The queue of commands that go ahead of the channel's. Unbounded, but its
/// only users (cascades) are bounded by their callers' concurrency.
#[derive(Default)]
struct Urgent {
    queue: Mutex<UrgentQueue>,
    /// Whether `queue.jobs` may be non-empty: the thread's check between
    /// commands, without the lock.
    waiting: AtomicBool,
}

#[derive(Default)]
struct UrgentQueue {
    jobs: Vec<Box<dyn Job>>,
    /// A `Wake` was sent since the thread last took the queue.
    woken: bool,
    /// The thread has stopped: nothing queued will run.
    closed: bool,
}

impl Urgent {
    fn lock(&self) -> MutexGuard<'_, UrgentQueue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `job`; true when the thread must be woken.
    fn push(&self, job: Box<dyn Job>) -> Result<bool, EngineError> {
        let mut queue = self.lock();
        if queue.closed {
            return Err(closed());
        }
        queue.jobs.push(job);
        self.waiting.store(true, Ordering::Release);
        Ok(!std::mem::replace(&mut queue.woken, true))
    }

    fn waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire)
    }

    /// Takes every queued job, oldest first.
    fn take(&self) -> Vec<Box<dyn Job>> {
        let mut queue = self.lock();
        queue.woken = false;
        self.waiting.store(false, Ordering::Release);
        std::mem::take(&mut queue.jobs)
    }

    /// The thread stops: drops what is queued (its callers see the backend
    /// as closed) and refuses what comes later.
    fn close(&self) {
        let jobs = {
            let mut queue = self.lock();
            queue.closed = true;
            std::mem::take(&mut queue.jobs)
        };
        drop(jobs);
    }
}

/// What the writer thread owns.
pub(crate) struct WriterSetup {
    pub(crate) conn: Connection,
    pub(crate) lock: LockFile,
    pub(crate) clock: SharedClock,
    pub(crate) max_group_commit: usize,
    pub(crate) max_group_duration: Duration,
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
        let urgent = Arc::new(Urgent::default());
        let queue = urgent.clone();
        std::thread::Builder::new()
            .name("ff-sqlite-writer".to_owned())
            .spawn(move || run(setup, rx, &queue, max_group))
            .map_err(EngineError::backend)?;
        Ok(Self { tx, urgent })
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

    /// [`Self::write`], run ahead of every command not yet started: next in
    /// the group under way, or first in the next one.
    pub(crate) async fn write_urgent<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, EngineError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        if self.urgent.push(Box::new(Command { f, tx }))? {
            // A full channel means the thread has work and will look at the
            // urgent queue before it; a closed one, that it stopped, and
            // closing the queue drops the command.
            let _ = self.tx.try_send(Msg::Wake);
        }
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

fn run(setup: WriterSetup, mut rx: mpsc::Receiver<Msg>, urgent: &Urgent, max_group: usize) {
    let WriterSetup {
        conn,
        lock,
        clock,
        syncer,
        checkpointer,
        max_group_duration,
        ..
    } = setup;
    let mut jobs: VecDeque<Box<dyn Job>> = VecDeque::with_capacity(max_group);
    let mut cache = RowCache::default();
    let mut shutdown = None;
    let group = Group {
        conn: &conn,
        clock: &clock,
        syncer: &syncer,
        urgent,
        max_commands: max_group.saturating_mul(2),
        max_duration: max_group_duration,
    };
    while shutdown.is_none() {
        if jobs.is_empty() && !urgent.waiting() {
            match rx.blocking_recv() {
                Some(Msg::Job(job)) => jobs.push_back(job),
                Some(Msg::Wake) => {}
                Some(Msg::Shutdown(ack)) => shutdown = Some(ack),
                None => break,
            }
        }
        while shutdown.is_none() && jobs.len() < max_group {
            match rx.try_recv() {
                Ok(Msg::Job(job)) => jobs.push_back(job),
                Ok(Msg::Wake) => {}
                Ok(Msg::Shutdown(ack)) => shutdown = Some(ack),
                Err(_) => break,
            }
        }
        if !jobs.is_empty() || urgent.waiting() {
            if group.commit(&mut jobs, &mut cache) {
                checkpointer.nudge();
            }
            checkpointer.restart_if_large(&conn);
        }
    }
    // A group may end early (full, or past its time cap) and leave commands
    // queued before the shutdown behind: they still commit.
    while !jobs.is_empty() || urgent.waiting() {
        group.commit(&mut jobs, &mut cache);
    }
    // Commands sent after the shutdown are dropped unanswered; their callers
    // see the backend as closed.
    urgent.close();
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
    urgent: &'a Urgent,
    /// A group stops taking commands once it has run this many, or, holding
    /// a flow member's completion, for this long; the rest wait for the next
    /// group. (Urgent commands may take a group past `max_group_commit`,
    /// never past `max_commands`.)
    max_commands: usize,
    max_duration: Duration,
}

impl Group<'_> {
    /// Runs and commits the commands at the front of `jobs`, each preceded
    /// by the urgent commands waiting when it would start, until `jobs` is
    /// empty or the group is full; the rest stay in `jobs`. A committed
    /// group goes to the syncer, which answers once it is durable; a failed
    /// one is answered here, with every command still in `jobs`. Returns
    /// whether the group committed.
    fn commit(&self, jobs: &mut VecDeque<Box<dyn Job>>, cache: &mut RowCache) -> bool {
        let started = Instant::now();
        let mut ctx = WriteCtx::new(self.conn, cache);
        if let Err(e) = self.exec("BEGIN IMMEDIATE") {
            jobs.drain(..).for_each(|job| job.abort(&e));
            if self.urgent.waiting() {
                self.urgent.take().into_iter().for_each(|job| job.abort(&e));
            }
            return false;
        }
        let mut answers = Vec::with_capacity(jobs.len());
        let mut failure = None;
        // A cascade promotes children without a completion of its own, so
        // running one caps the group's time as a flow completion does.
        let mut ran_cascade = false;
        loop {
            let capped = ctx.holds_flow_completion() || ran_cascade;
            let full = answers.len() >= self.max_commands
                || (capped && started.elapsed() >= self.max_duration);
            if full && !answers.is_empty() {
                break;
            }
            if self.urgent.waiting() {
                ran_cascade = true;
                for job in self.urgent.take().into_iter().rev() {
                    jobs.push_front(job);
                }
            }
            let Some(job) = jobs.pop_front() else {
                break;
            };
            if let Err(e) = self.exec("SAVEPOINT command") {
                job.abort(&e);
                failure = Some(e);
                break;
            }
            let mark = ctx.begin_command(self.clock.now_ms());
            let answer = job.run(&mut ctx);
            let closed = if answer.keeps() {
                self.exec("RELEASE command")
            } else {
                ctx.forget_command(mark);
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
                let (completions, wake) = ctx.into_announcements();
                self.syncer.submit(Committed {
                    answers,
                    completions,
                    wake,
                });
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, commands = answers.len(), "group transaction failed");
                if let Err(rollback) = self.exec("ROLLBACK") {
                    tracing::warn!(error = %rollback, "rolling back the failed group failed");
                }
                ctx.discard();
                jobs.drain(..).for_each(|job| job.abort(&e));
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

    use std::path::PathBuf;

    use super::*;
    use crate::completions::Completions;
    use crate::config::Synchronous;
    use crate::migrations;
    use ff_backend_support::WorkSignal;
    use ff_core::{Execution, ExecutionId};

    fn start(dir: &TempDir) -> (Writer, Completions) {
        start_with(dir, Duration::from_secs(1))
    }

    fn start_with(dir: &TempDir, max_group_duration: Duration) -> (Writer, Completions) {
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
            max_group_duration,
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
        cancel_new_in(ctx, None, outcome)
    }

    fn cancel_new_in(
        ctx: &mut WriteCtx<'_>,
        flow: Option<ff_core::execution::FlowMembership>,
        outcome: Result<(), EngineError>,
    ) -> Result<ExecutionId, EngineError> {
        let req = SubmitRequest::new("a", "job", JsonText::null());
        let mut exec = Execution::new(ExecutionId::new(), req, ctx.now);
        exec.flow = flow;
        let before = ctx.insert(&exec)?;
        lifecycle::cancel(&mut exec, ctx.now);
        ctx.save(exec.clone(), before)?;
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn urgent_commands_run_ahead_of_queued_ones() {
        let dir = TempDir::new("sqlite-writer-urgent");
        let (writer, _) = start(&dir);
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = |name: &'static str| {
            let order = order.clone();
            move |_: &mut WriteCtx<'_>| {
                order.lock().unwrap().push(name);
                Ok(())
            }
        };
        // Hold the writer so the others queue behind it.
        let hold = writer.write(|_| {
            std::thread::sleep(Duration::from_millis(200));
            Ok(())
        });
        let queued = writer.write(log("queued"));
        let urgent = writer.write_urgent(log("urgent"));
        let (hold, queued, urgent) = tokio::join!(hold, queued, urgent);
        hold.and(queued).and(urgent).unwrap();
        assert_eq!(*order.lock().unwrap(), ["urgent", "queued"]);
        writer.shutdown().await;
        let late = writer.write_urgent(|_| Ok(())).await;
        assert_eq!(late.unwrap_err().kind(), ff_core::ErrorKind::Unavailable);
    }

    /// Queues a command that holds the writer for 100 ms, one that takes
    /// 30 ms and ends an execution (a member of a flow or not), and one that
    /// counts the outbox rows another connection sees (only committed ones).
    async fn outbox_seen_after_slow_end(writer: &Writer, path: PathBuf, member: bool) -> i64 {
        let hold = writer.write(|_| {
            std::thread::sleep(Duration::from_millis(100));
            Ok(())
        });
        let slow = writer.write(move |ctx| {
            std::thread::sleep(Duration::from_millis(30));
            let flow = member.then(|| ff_core::execution::FlowMembership {
                flow_id: ff_core::FlowId::new(),
                node_key: "a".to_owned(),
            });
            cancel_new_in(ctx, flow, Ok(()))
        });
        let next = writer.write(move |_| {
            let reader = Connection::open(&path).db()?;
            reader
                .query_row("SELECT COUNT(*) FROM outbox", [], |row| {
                    row.get::<_, i64>(0)
                })
                .db()
        });
        let (hold, slow, next) = tokio::join!(hold, slow, next);
        hold.and(slow).unwrap();
        next.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_holding_a_flow_completion_commits_after_its_duration() {
        let dir = TempDir::new("sqlite-writer-duration");
        let (writer, _) = start_with(&dir, Duration::from_millis(20));
        let path = dir.path().join("ff.db");
        assert_eq!(
            outbox_seen_after_slow_end(&writer, path.clone(), false).await,
            0,
            "without a flow completion the group runs on"
        );
        assert_eq!(
            outbox_seen_after_slow_end(&writer, path, true).await,
            2,
            "the member's group committed before the next command"
        );
        writer.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rolled_back_command_leaves_no_cached_row_behind() {
        let dir = TempDir::new("sqlite-writer-cache");
        let (writer, _) = start(&dir);
        let id = writer
            .write(|ctx| {
                let req = SubmitRequest::new("a", "job", JsonText::null());
                let exec = Execution::new(ExecutionId::new(), req, ctx.now);
                ctx.insert(&exec)?;
                Ok(exec.id)
            })
            .await
            .unwrap();
        // Claims (the running row is cached), then fails: rolled back.
        let failed = writer
            .write(move |ctx| -> Result<(), EngineError> {
                let (mut exec, before) = ctx.load(id)?;
                ff_core::lease::claim(&mut exec, "w", ff_core::LeaseToken::random(), ctx.now);
                ctx.save(exec, before)?;
                Err(EngineError::conflict("undo"))
            })
            .await;
        assert!(failed.is_err());
        let state = writer
            .write(move |ctx| Ok(ctx.load(id)?.0.state))
            .await
            .unwrap();
        assert_eq!(state, ff_core::State::Ready, "the claim was rolled back");
        writer.shutdown().await;
    }
}
