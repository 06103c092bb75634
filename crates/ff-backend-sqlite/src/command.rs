//! What one write command is: the type-erased job the writer thread runs,
//! the answer it holds back until the group's fate is known, and
//! [`WriteCtx`], the handle the command's closure gets.

use std::panic::{catch_unwind, AssertUnwindSafe};

use rusqlite::Connection;
use tokio::sync::oneshot;

use ff_core::clock::Millis;
use ff_core::{CompletionPayload, EngineError, Execution, ExecutionId, State};

use crate::completions;
use crate::row_cache::RowCache;
use crate::rows::{self, Stamp};
use crate::SqlResult;

/// The handle write commands get: the transaction's connection, the
/// command's `now`, the writer's row cache, and what to announce after the
/// commit.
pub(crate) struct WriteCtx<'c> {
    conn: &'c Connection,
    cache: &'c mut RowCache,
    /// Read once per command from the configured clock.
    pub(crate) now: Millis,
    completions: Vec<CompletionPayload>,
    /// Where in `completions` the first flow member's is.
    first_flow_completion: Option<usize>,
    wake: bool,
}

impl<'c> WriteCtx<'c> {
    /// A context for one group transaction on `conn`.
    pub(crate) fn new(conn: &'c Connection, cache: &'c mut RowCache) -> Self {
        Self {
            conn,
            cache,
            now: 0,
            completions: Vec::new(),
            first_flow_completion: None,
            wake: false,
        }
    }

    /// Starts the next command at `now`; the mark undoes what it announces.
    pub(crate) fn begin_command(&mut self, now: Millis) -> (usize, bool) {
        self.now = now;
        self.cache.begin_command();
        (self.completions.len(), self.wake)
    }

    /// Forgets what the command begun at `mark` did (it rolled back).
    pub(crate) fn forget_command(&mut self, mark: (usize, bool)) {
        self.truncate_completions(mark.0);
        self.wake = mark.1;
        self.cache.roll_back_command();
    }

    fn truncate_completions(&mut self, len: usize) {
        self.completions.truncate(len);
        if self.first_flow_completion.is_some_and(|i| i >= len) {
            self.first_flow_completion = None;
        }
    }

    /// Whether the group so far will announce a flow member's completion,
    /// whose children wait for that announcement.
    pub(crate) fn holds_flow_completion(&self) -> bool {
        self.first_flow_completion.is_some()
    }

    /// What the group announces once durable: completions, and whether
    /// something became claimable.
    pub(crate) fn into_announcements(self) -> (Vec<CompletionPayload>, bool) {
        (self.completions, self.wake)
    }

    /// The group transaction failed: forget everything it did.
    pub(crate) fn discard(self) {
        self.cache.clear();
    }

    /// Runs `f` in a savepoint nested in the command's own: when `f` fails,
    /// what it wrote, announced and cached is undone and the command goes
    /// on, so one command can carry several independent steps. The outer
    /// error is the savepoint itself failing, which fails the command.
    pub(crate) fn step<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, EngineError>,
    ) -> Result<Result<T, EngineError>, EngineError> {
        exec(self.conn, "SAVEPOINT step")?;
        let mark = (self.completions.len(), self.wake, self.cache.mark());
        let result = f(self);
        if result.is_err() {
            self.truncate_completions(mark.0);
            self.wake = mark.1;
            self.cache.roll_back_to(mark.2);
            exec(self.conn, "ROLLBACK TO step")?;
        }
        exec(self.conn, "RELEASE step")?;
        Ok(result)
    }

    /// Announces after the commit that claims should look again.
    pub(crate) fn wake(&mut self) {
        self.wake = true;
    }

    pub(crate) fn conn(&self) -> &'c Connection {
        self.conn
    }

    /// The execution and its stamp, or `NotFound`.
    pub(crate) fn load(&mut self, id: ExecutionId) -> Result<(Execution, Stamp), EngineError> {
        if let Some(cached) = self.cache.take(id) {
            return Ok(cached);
        }
        rows::load_stored(self.conn, id)?.ok_or_else(|| EngineError::execution_not_found(id))
    }

    /// Stores a new execution.
    pub(crate) fn insert(&mut self, exec: &Execution) -> Result<Stamp, EngineError> {
        let stamp = rows::insert_execution(self.conn, exec)?;
        self.wake |= exec.is_claimable(self.now);
        Ok(stamp)
    }

    /// Writes `exec` back if a rule changed it since `before` (its stamp at
    /// load); a transition into a terminal state records its outbox entry in
    /// the same transaction. Returns whether it wrote.
    pub(crate) fn save(&mut self, exec: Execution, before: Stamp) -> Result<bool, EngineError> {
        if !before.changed(&exec) {
            self.cache.put(exec, before);
            return Ok(false);
        }
        rows::update_execution(self.conn, &before, &exec)?;
        if !before.state().is_terminal() && exec.state.is_terminal() {
            let payload = completions::record(self.conn, &exec, self.now)?;
            if payload.flow_id.is_some() && self.first_flow_completion.is_none() {
                self.first_flow_completion = Some(self.completions.len());
            }
            self.completions.push(payload);
        }
        // A limited execution leaving running frees its slot for another.
        let freed = before.state() == State::Running
            && exec.state != State::Running
            && exec.concurrency_key.is_some();
        self.wake |= freed || exec.is_claimable(self.now);
        let after = before.after(&exec);
        self.cache.put(exec, after);
        Ok(true)
    }
}

fn exec(conn: &Connection, sql: &str) -> Result<(), EngineError> {
    conn.prepare_cached(sql).db()?.execute([]).db()?;
    Ok(())
}

/// A queued command, type-erased so one channel carries every answer type.
pub(crate) trait Job: Send {
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

pub(crate) struct Command<T, F> {
    pub(crate) f: F,
    pub(crate) tx: oneshot::Sender<Result<T, EngineError>>,
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
        let _ = self.tx.send(Err(err.for_another_caller()));
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
            (Err(e), Ok(_)) => Err(e.for_another_caller()),
            (_, result) => result,
        };
        let _ = self.tx.send(answer);
    }
}
