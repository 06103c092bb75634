//! `MaintenanceOps`: bounded scans over each partition's time indexes; each
//! change is an ordinary versioned transition, so two nodes scanning at
//! once cannot both apply one.

use async_trait::async_trait;

use ff_core::suspension::rules;

use ff_core::{
    lease, lifecycle, CompletionPayload, EngineError, Execution, ExecutionId, MaintenanceOps,
    Millis,
};

use crate::conn::Conn;
use crate::keys::Keys;
use crate::ValkeyBackend;

#[async_trait]
impl MaintenanceOps for ValkeyBackend {
    async fn expire_leases(&self, limit: u32) -> Result<u32, EngineError> {
        self.scan(|k, p| k.running(p), limit, lease::expire_if_lapsed)
            .await
    }

    async fn promote_scheduled(&self, limit: u32) -> Result<u32, EngineError> {
        self.scan(|k, p| k.scheduled(p), limit, lifecycle::promote_scheduled)
            .await
    }

    async fn expire_deadlines(&self, limit: u32) -> Result<u32, EngineError> {
        self.scan(|k, p| k.deadlines(p), limit, lifecycle::expire_deadline)
            .await
    }

    async fn expire_suspensions(&self, limit: u32) -> Result<u32, EngineError> {
        self.scan(|k, p| k.suspended(p), limit, rules::time_out)
            .await
    }

    async fn undispatched_completions(
        &self,
        older_than_ms: u64,
        limit: u32,
    ) -> Result<Vec<CompletionPayload>, EngineError> {
        let cutoff = self.cutoff(older_than_ms);
        undispatched(&self.inner.conn, self.keys(), cutoff, limit).await
    }

    async fn reconcile_blocked(&self, older_than_ms: u64, limit: u32) -> Result<u32, EngineError> {
        let cutoff = self.cutoff(older_than_ms);
        self.reconcile_blocked_nodes(cutoff, limit).await
    }

    async fn trim_outbox(&self, older_than_ms: u64, limit: u32) -> Result<u32, EngineError> {
        let cutoff = self.cutoff(older_than_ms);
        let mut trimmed = 0;
        for p in 0..self.keys().partitions() {
            if trimmed >= limit {
                break;
            }
            let n: u32 = self
                .inner
                .conn
                .fcall(
                    "ff_v2_trim",
                    self.keys().base(p),
                    &[cutoff.to_string(), (limit - trimmed).to_string()],
                )
                .await?;
            trimmed += n;
        }
        Ok(trimmed)
    }
}

/// Outbox entries not yet dispatched that committed at or before `cutoff`,
/// oldest first, at most `limit`, across the partitions.
pub(crate) async fn undispatched(
    conn: &Conn,
    keys: &Keys,
    cutoff: Millis,
    limit: u32,
) -> Result<Vec<CompletionPayload>, EngineError> {
    let mut all = Vec::new();
    for p in 0..keys.partitions() {
        let flat: Vec<String> = conn
            .fcall(
                "ff_v2_undispatched",
                keys.base(p),
                &[cutoff.to_string(), limit.to_string()],
            )
            .await?;
        for pair in flat.chunks(2) {
            let [seq, body] = pair else { continue };
            let mut payload: CompletionPayload =
                serde_json::from_str(body).map_err(EngineError::backend)?;
            payload.partition = p;
            payload.seq = seq.parse().map_err(EngineError::backend)?;
            all.push(payload);
        }
    }
    all.sort_by_key(|c| (c.committed_at, c.partition, c.seq));
    all.truncate(limit as usize);
    Ok(all)
}

impl ValkeyBackend {
    fn cutoff(&self, age: u64) -> Millis {
        let age = Millis::try_from(age).unwrap_or(Millis::MAX);
        self.now().saturating_sub(age)
    }

    /// Applies `rule` to up to `limit` executions whose score in the index
    /// `index(keys, p)` is due, partition by partition.
    async fn scan<I, F>(&self, index: I, limit: u32, rule: F) -> Result<u32, EngineError>
    where
        I: Fn(&crate::keys::Keys, u32) -> String + Send + Sync,
        F: Fn(&mut Execution, Millis) -> bool + Send + Sync + Copy,
    {
        let mut changed = 0;
        for p in 0..self.keys().partitions() {
            if changed >= limit {
                break;
            }
            let now = self.now();
            let due: Vec<String> = self
                .inner
                .conn
                .query(
                    redis::cmd("ZRANGE")
                        .arg(index(self.keys(), p))
                        .arg("-inf")
                        .arg(now)
                        .arg("BYSCORE")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(limit - changed),
                )
                .await?;
            for id in due {
                let id: ExecutionId = id.parse()?;
                match crate::transition::transition(self, id, |exec, now| rule(exec, now)).await {
                    Ok(true) => changed += 1,
                    Ok(false) => {}
                    // Gone since the index was read: nothing to do.
                    Err(err) if err.kind() == ff_core::ErrorKind::NotFound => {}
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(changed)
    }
}
