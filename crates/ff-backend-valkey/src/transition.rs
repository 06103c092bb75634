//! The single-execution transition: load one execution (from the row
//! cache when this process holds its lease), apply an `ff_core` rule, and
//! write what changed with one versioned `FCALL`.

use std::collections::HashMap;

use ff_core::{EngineError, Execution, ExecutionId, Millis};

use crate::rows::{self, Stored};
use crate::write::{Outcome, Plan};
use crate::{ValkeyBackend, MAX_ATTEMPTS};

impl ValkeyBackend {
    /// One execution and its version; `None` when unknown.
    pub(crate) async fn load(&self, id: ExecutionId) -> Result<Option<Stored>, EngineError> {
        let p = self.keys().exec_partition(id);
        let fields: HashMap<String, String> = self
            .inner
            .conn
            .query(redis::cmd("HGETALL").arg(self.keys().exec(p, id)))
            .await?;
        rows::decode(fields)
    }

    /// Several executions of one partition in one round trip, in `ids`
    /// order, `None` for unknown ones.
    pub(crate) async fn load_many(
        &self,
        p: u32,
        ids: &[String],
    ) -> Result<Vec<Option<Stored>>, EngineError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL").arg(self.keys().exec_str(p, id));
        }
        let rows: Vec<HashMap<String, String>> = self.query_pipe(&pipe).await?;
        rows.into_iter().map(rows::decode).collect()
    }

    pub(crate) async fn query_pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, EngineError> {
        self.inner.conn.pipe(pipe).await
    }
}

/// Applies `rule` to one execution and writes what changed, retried from
/// the read when another writer got there first.
pub(crate) async fn transition<T, F>(
    backend: &ValkeyBackend,
    id: ExecutionId,
    mut rule: F,
) -> Result<T, EngineError>
where
    F: FnMut(&mut Execution, Millis) -> T + Send,
{
    let mut cached = backend.inner.row_cache.take(id);
    for _ in 0..MAX_ATTEMPTS {
        let from_cache = cached.is_some();
        let stored = match cached.take() {
            Some(stored) => stored,
            None => backend
                .load(id)
                .await?
                .ok_or_else(|| EngineError::execution_not_found(id))?,
        };
        let now = backend.now();
        let mut exec = stored.exec.clone();
        let out = rule(&mut exec, now);
        if exec == stored.exec {
            if from_cache {
                // Nothing to write: answer from the server's copy, not
                // from what this process last wrote.
                continue;
            }
            return Ok(out);
        }
        let mut plan = Plan::new(backend.keys().exec_partition(id));
        let changed = plan.save(backend.keys(), Some(&stored), &exec, now)?;
        match backend.commit(plan, now).await? {
            Outcome::Applied => {
                backend.inner.row_cache.keep_written(stored, exec, changed);
                return Ok(out);
            }
            Outcome::Conflict(what) => tracing::trace!(what, "transition raced; retrying"),
        }
    }
    Err(EngineError::Unavailable {
        message: format!("execution {id} kept changing under this write; try again"),
    })
}
