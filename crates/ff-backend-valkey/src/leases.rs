//! Claims through `ff_v2_claim`, partition by partition: the one rule the
//! Lua library applies itself.

use std::time::Duration;

use redis::Value;

use ff_core::lease;
use ff_core::{ClaimRequest, Claimed, EngineError, Execution, LeaseToken, Millis};

use crate::rows;
use crate::ValkeyBackend;

/// A waiting claim looks again at least this often, so work announced while
/// the listener was reconnecting is still found (a partition hint lasts no
/// longer either).
pub(crate) const RECHECK: Duration = Duration::from_secs(1);

impl ValkeyBackend {
    /// Claims up to `req.n`: asks the partitions that may hold work, from a
    /// rotating start, until `n` are claimed. Order holds per partition.
    pub(crate) async fn claim_partitions(
        &self,
        req: &ClaimRequest,
    ) -> Result<Vec<Claimed>, EngineError> {
        let partitions = self.keys().partitions();
        let now = self.now();
        let snapshot = self.inner.hints.snapshot(&req.namespace, &req.lanes, now);
        let start = rand_start(partitions);
        let mut claimed: Vec<Execution> = Vec::new();
        for i in 0..partitions {
            let p = (start + i) % partitions;
            if !snapshot.ask[p as usize] {
                continue;
            }
            let want = req.n - claimed.len() as u32;
            let (got, hint) = self.claim_partition(req, p, want, now).await?;
            if (got.len() as u32) < want {
                if let Some(until) = hint {
                    self.inner.hints.found_empty(
                        &req.namespace,
                        &req.lanes,
                        p,
                        &snapshot,
                        now,
                        until,
                    );
                }
            }
            claimed.extend(got);
            if claimed.len() as u32 >= req.n {
                break;
            }
        }
        if partitions > 1 {
            claimed.sort_by_key(Execution::order_key);
        }
        claimed.iter().map(lease::claimed).collect()
    }

    /// One `ff_v2_claim` call; the executions claimed and, when it could
    /// tell, the time before which the partition has nothing claimable.
    async fn claim_partition(
        &self,
        req: &ClaimRequest,
        p: u32,
        n: u32,
        now: Millis,
    ) -> Result<(Vec<Execution>, Option<Millis>), EngineError> {
        let tokens: String = (0..n).map(|_| LeaseToken::random().to_string()).collect();
        let mut args = vec![
            now.to_string(),
            req.worker_id.clone(),
            n.to_string(),
            tokens,
            req.namespace.clone(),
            req.capabilities.len().to_string(),
        ];
        args.extend(req.capabilities.iter().cloned());
        args.extend(req.lanes.iter().cloned());
        let reply: Vec<Value> = self
            .inner
            .conn
            .fcall("ff_v2_claim", self.keys().base(p), &args)
            .await?;
        let mut reply = reply.into_iter();
        let hint = match reply.next() {
            Some(Value::BulkString(h)) => {
                let text = String::from_utf8_lossy(&h);
                let (hint, passed) = text.split_once(';').unwrap_or((&text, ""));
                self.note_passed_over(passed);
                match hint {
                    "" => None,
                    "inf" => Some(Millis::MAX),
                    t => t.parse().ok(),
                }
            }
            other => {
                return Err(EngineError::backend(format!(
                    "unexpected answer from ff_v2_claim: {other:?}"
                )))
            }
        };
        let mut claimed = Vec::new();
        for value in reply {
            let flat: Vec<String> =
                redis::FromRedisValue::from_redis_value(&value).map_err(EngineError::backend)?;
            let stored = rows::decode_flat(flat)?
                .ok_or_else(|| EngineError::backend("ff_v2_claim answered an empty record"))?;
            claimed.push(stored.exec.clone());
            self.inner.row_cache.keep(stored);
        }
        Ok((claimed, hint))
    }
}

/// Where a claim starts among the partitions, so claimers spread out.
fn rand_start(partitions: u32) -> u32 {
    if partitions <= 1 {
        return 0;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos % partitions
}
