//! One execution's transition outside any transaction: read the row, apply
//! the `ff_core` rule, write it back naming the version read. Two round
//! trips; no lock is held between them. When another writer got there
//! first the version no longer matches, and the transition starts over on
//! the fresh row, so the rule always decides on what is stored.

use ff_core::{EngineError, Execution, ExecutionId, Millis};

use crate::rows;
use crate::store::{self, Change};
use crate::PostgresBackend;

/// Attempts before a transition gives up on a row that keeps changing.
const MAX_ATTEMPTS: u32 = 64;

impl PostgresBackend {
    /// Runs `rule` on execution `id` (unknown id → `NotFound`) and persists
    /// whatever it changed, even when it answers with an error, as after a
    /// lease expiry the rule applied itself.
    pub(crate) async fn transition<T, F>(
        &self,
        id: ExecutionId,
        mut rule: F,
    ) -> Result<T, EngineError>
    where
        F: FnMut(&mut Execution, Millis) -> T,
    {
        for _ in 0..MAX_ATTEMPTS {
            let stored = rows::load(&self.inner.pool, id, false)
                .await?
                .ok_or_else(|| EngineError::execution_not_found(id))?;
            let now = self.now();
            let mut exec = stored.exec.clone();
            let answer = rule(&mut exec, now);
            let Some(change) = Change::between(&stored, exec) else {
                return Ok(answer);
            };
            let changes = [change];
            let saved = store::save_batch(&self.inner.pool, &changes, now).await?;
            if saved.all(&changes) {
                self.announce(saved);
                return Ok(answer);
            }
            tracing::trace!(%id, "execution changed under a transition; retrying");
        }
        Err(EngineError::backend(format!(
            "execution {id} kept changing; gave up after {MAX_ATTEMPTS} attempts"
        )))
    }
}
