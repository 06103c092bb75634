//! Running executions the writer wrote last, kept decoded.
//!
//! A claimed execution is nearly always renewed, completed or failed next,
//! by a command that must load it first; decoding its row again is a large
//! share of such a command. The writer is the only writer of the file (the
//! lock file sees to that), so what it wrote is what the row holds, and it
//! may answer the load from here.
//!
//! The invariant: an entry, when present, equals the row as the current
//! transaction sees it. So a command takes the entry it loads (a command
//! that fails after taking simply leaves it out), entries a command put are
//! dropped when its savepoint (or a nested one) rolls back, and everything
//! is dropped when a group transaction fails. Dropping an entry is always
//! safe: the next load reads the row.

use std::collections::HashMap;

use ff_core::{Execution, ExecutionId, State};

use crate::rows::Stamp;

/// Entries whose payload and result exceed this are not kept.
const MAX_ENTRY_BYTES: usize = 64 * 1024;

/// The most the cache holds, payloads and results counted.
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// Fixed overhead counted per entry besides its payload and result.
const ENTRY_OVERHEAD: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct RowCache {
    entries: HashMap<ExecutionId, (Execution, Stamp)>,
    bytes: usize,
    /// Ids the current command put, to drop if it rolls back.
    put_by_command: Vec<ExecutionId>,
}

impl RowCache {
    /// Removes and returns the entry for `id`.
    pub(crate) fn take(&mut self, id: ExecutionId) -> Option<(Execution, Stamp)> {
        let entry = self.entries.remove(&id)?;
        self.bytes -= cost(&entry.0);
        Some(entry)
    }

    /// Keeps `exec`, as stored at `stamp`, when it is running (the state a
    /// worker's next call loads) and small enough; otherwise forgets `id`.
    pub(crate) fn put(&mut self, exec: Execution, stamp: Stamp) {
        self.forget(exec.id);
        let cost = cost(&exec);
        if exec.state != State::Running || cost > MAX_ENTRY_BYTES || self.bytes + cost > MAX_BYTES {
            return;
        }
        self.bytes += cost;
        self.put_by_command.push(exec.id);
        self.entries.insert(exec.id, (exec, stamp));
    }

    /// Drops the entry for `id`, if any.
    pub(crate) fn forget(&mut self, id: ExecutionId) {
        self.take(id);
    }

    /// A new command starts.
    pub(crate) fn begin_command(&mut self) {
        self.put_by_command.clear();
    }

    /// Where the current command stands, for [`Self::roll_back_to`].
    pub(crate) fn mark(&self) -> usize {
        self.put_by_command.len()
    }

    /// Part of the current command, since `mark`, rolled back.
    pub(crate) fn roll_back_to(&mut self, mark: usize) {
        for id in self
            .put_by_command
            .split_off(mark.min(self.put_by_command.len()))
        {
            self.forget(id);
        }
    }

    /// The current command rolled back: what it put may no longer be true.
    pub(crate) fn roll_back_command(&mut self) {
        for id in std::mem::take(&mut self.put_by_command) {
            self.forget(id);
        }
    }

    /// The group transaction failed: nothing here can be trusted.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
        self.put_by_command.clear();
    }
}

fn cost(exec: &Execution) -> usize {
    ENTRY_OVERHEAD + exec.payload.len() + exec.result.as_ref().map_or(0, |r| r.len())
}
