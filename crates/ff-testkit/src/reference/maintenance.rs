//! `MaintenanceOps` for the reference backend.

use async_trait::async_trait;
use ff_core::suspension::rules;
use ff_core::{
    lease, lifecycle, CompletionPayload, EngineError, Execution, ExecutionId, MaintenanceOps,
    Millis,
};

use super::{ReferenceBackend, Store};

impl Store {
    /// Ids of executions matching `due`, oldest first, at most `limit`.
    fn due(&self, limit: u32, due: impl Fn(&Execution) -> bool) -> Vec<ExecutionId> {
        self.executions
            .values()
            .filter(|e| due(e))
            .map(|e| e.id)
            .take(limit as usize)
            .collect()
    }
}

impl ReferenceBackend {
    /// Applies `apply` to each execution `due` selects; counts the changes.
    fn scan(
        &self,
        limit: u32,
        due: impl Fn(&Execution, Millis) -> bool,
        apply: impl Fn(&mut Execution, Millis) -> bool,
    ) -> Result<u32, EngineError> {
        let now = self.now();
        self.with_store(|store, effects| {
            let mut changed = 0;
            for id in store.due(limit, |e| due(e, now)) {
                if store.update(id, now, effects, |exec| apply(exec, now))? {
                    changed += 1;
                }
            }
            Ok(changed)
        })
    }
}

#[async_trait]
impl MaintenanceOps for ReferenceBackend {
    async fn expire_leases(&self, limit: u32) -> Result<u32, EngineError> {
        self.scan(
            limit,
            |e, now| lease::lapsed(e, now).is_some(),
            lease::expire_if_lapsed,
        )
    }

    async fn promote_scheduled(&self, limit: u32) -> Result<u32, EngineError> {
        self.scan(
            limit,
            |e, now| e.state == ff_core::State::Scheduled && e.ready_at <= now,
            lifecycle::promote_scheduled,
        )
    }

    async fn expire_deadlines(&self, limit: u32) -> Result<u32, EngineError> {
        self.scan(
            limit,
            |e, now| !e.state.is_terminal() && e.deadline.is_some_and(|d| d <= now),
            lifecycle::expire_deadline,
        )
    }

    async fn expire_suspensions(&self, limit: u32) -> Result<u32, EngineError> {
        self.scan(
            limit,
            |e, now| rules::timeout_at(e).is_some_and(|at| at <= now),
            rules::time_out,
        )
    }

    async fn undispatched_completions(
        &self,
        older_than_ms: u64,
        limit: u32,
    ) -> Result<Vec<CompletionPayload>, EngineError> {
        let cutoff = self.now() - older_than_ms as Millis;
        Ok(self.with_store(|store, _| {
            store
                .outbox
                .iter()
                .flatten()
                .filter(|entry| !entry.dispatched && entry.payload.committed_at <= cutoff)
                .take(limit as usize)
                .map(|entry| entry.payload.clone())
                .collect()
        }))
    }

    async fn reconcile_blocked(&self, older_than_ms: u64, limit: u32) -> Result<u32, EngineError> {
        self.reconcile_blocked_nodes(self.now() - older_than_ms as Millis, limit)
    }

    async fn trim_outbox(&self, older_than_ms: u64, limit: u32) -> Result<u32, EngineError> {
        let cutoff = self.now() - older_than_ms as Millis;
        Ok(self.with_store(|store, _| {
            let mut trimmed = 0;
            for slot in store.outbox.iter_mut() {
                if trimmed == limit {
                    break;
                }
                if slot
                    .as_ref()
                    .is_some_and(|e| e.dispatched && e.payload.committed_at <= cutoff)
                {
                    *slot = None;
                    trimmed += 1;
                }
            }
            trimmed
        }))
    }
}
