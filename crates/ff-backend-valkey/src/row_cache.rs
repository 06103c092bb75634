//! Running executions as this process last claimed or wrote them, so a
//! worker's renew, complete or fail starts from that copy instead of
//! reading the hash again. The copy is only a guess: the write still names
//! its version, and a write that finds the version moved (another process
//! changed the execution) reads the hash and runs the rule again.

use std::collections::HashMap;
use std::sync::Mutex;

use ff_core::{Execution, ExecutionId, State};

use crate::rows::Stored;

/// More entries than this and the cache starts over (a worker that never
/// finishes its executions must not grow it without bound).
const CAPACITY: usize = 65_536;

#[derive(Debug, Default)]
pub(crate) struct RowCache {
    entries: Mutex<HashMap<ExecutionId, Stored>>,
}

impl RowCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ExecutionId, Stored>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Remembers an execution as a claim left it.
    pub(crate) fn keep(&self, stored: Stored) {
        if stored.exec.state != State::Running {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(stored.exec.id, stored);
    }

    /// Remembers what a write made of `read`: `exec`, one version on, with
    /// `written` over the fields read.
    pub(crate) fn keep_written(
        &self,
        read: Stored,
        exec: Execution,
        written: Vec<(String, String)>,
    ) {
        if exec.state != State::Running {
            return;
        }
        let mut fields = read.fields;
        fields.extend(written);
        fields.insert(
            crate::rows::VERSION_FIELD.to_owned(),
            (read.version + 1).to_string(),
        );
        self.keep(Stored {
            exec,
            version: read.version + 1,
            fields,
        });
    }

    /// Forgets every copy: the server may have lost writes (a restart from
    /// an AOF synced a second ago), after which a version number can be
    /// reached again by a different write.
    pub(crate) fn forget(&self) {
        self.lock().clear();
    }

    /// Takes the copy of `id`, if there is one.
    pub(crate) fn take(&self, id: ExecutionId) -> Option<Stored> {
        self.lock().remove(&id)
    }
}
