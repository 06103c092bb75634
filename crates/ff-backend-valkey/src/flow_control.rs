//! `FlowControlStore`: a namespace's policies, rate buckets and budget
//! usage in its home partition, beside every execution that carries a
//! flow-control key, so `ff_v2_claim` (see `lua/flow_control.lua`) decides
//! limits in the same atomic step as the take. Policy and usage writes are
//! versioned `ff_v2_apply` plans, retried when another writer got there
//! first.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::Serialize;

use ff_core::flow_control::{Bucket, PassedOver, PassedOverCounts, Policy, PolicySpec, Usage};
use ff_core::{EngineError, ExecutionId, FlowControlStore, State};

use crate::rows::VERSION_FIELD;
use crate::write::{Outcome, Plan};
use crate::{ValkeyBackend, MAX_ATTEMPTS};

/// What the claim reads of a budget's usage: its window and the amounts,
/// without the remembered report keys.
#[derive(Serialize)]
struct HeldUsage<'a> {
    window: i64,
    used: &'a std::collections::BTreeMap<String, u64>,
}

/// The field holding a budget's whole usage.
const USAGE_FIELD: &str = "usage";

/// The field the claim reads ([`HeldUsage`]).
const HELD_FIELD: &str = "held";

fn version_of(fields: &HashMap<String, String>) -> Result<u64, EngineError> {
    fields
        .get(VERSION_FIELD)
        .map(|v| v.parse().map_err(EngineError::backend))
        .transpose()
        .map(Option::unwrap_or_default)
}

fn decode_usage(text: Option<&String>) -> Result<Usage, EngineError> {
    text.map(|t| serde_json::from_str(t).map_err(EngineError::backend))
        .transpose()
        .map(Option::unwrap_or_default)
}

impl ValkeyBackend {
    async fn hash(&self, key: &str) -> Result<HashMap<String, String>, EngineError> {
        self.inner.conn.query(redis::cmd("HGETALL").arg(key)).await
    }

    /// Retries `plan` from a fresh read while another writer races it.
    async fn apply_versioned<T>(
        &self,
        mut attempt: impl FnMut(HashMap<String, String>) -> Result<(Plan, T), EngineError>,
        key: &str,
    ) -> Result<T, EngineError> {
        for _ in 0..MAX_ATTEMPTS {
            let (plan, out) = attempt(self.hash(key).await?)?;
            match self.commit(plan, self.now()).await? {
                Outcome::Applied => return Ok(out),
                Outcome::Conflict(what) => tracing::trace!(what, "flow control raced; retrying"),
            }
        }
        Err(EngineError::Unavailable {
            message: format!("{key} kept changing under this write; try again"),
        })
    }
}

#[async_trait]
impl FlowControlStore for ValkeyBackend {
    async fn load_policies(&self, namespace: &str) -> Result<Vec<Policy>, EngineError> {
        let p = self.keys().flow_home(namespace);
        let fields = self.hash(&self.keys().policies(p, namespace)).await?;
        let mut policies = fields
            .iter()
            .filter(|(name, _)| name.as_str() != VERSION_FIELD)
            .map(|(_, body)| serde_json::from_str(body).map_err(EngineError::backend))
            .collect::<Result<Vec<Policy>, _>>()?;
        policies.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(policies)
    }

    async fn store_policy(
        &self,
        namespace: &str,
        name: &str,
        spec: &PolicySpec,
    ) -> Result<Policy, EngineError> {
        let p = self.keys().flow_home(namespace);
        let key = self.keys().policies(p, namespace);
        let now = self.now();
        let policy = self
            .apply_versioned(
                |fields| {
                    let version = version_of(&fields)?;
                    let before: Option<Policy> = fields
                        .get(name)
                        .map(|b| serde_json::from_str(b).map_err(EngineError::backend))
                        .transpose()?;
                    let policy = Policy {
                        namespace: namespace.to_owned(),
                        name: name.to_owned(),
                        version: before.map_or(0, |b| b.version) + 1,
                        spec: spec.clone(),
                        updated_at: now,
                    };
                    let body = serde_json::to_string(&policy).map_err(EngineError::backend)?;
                    let mut plan = Plan::new(p);
                    plan.check_version(&key, version);
                    plan.put(&key, version + 1, &[(name.to_owned(), body)]);
                    Ok((plan, policy))
                },
                &key,
            )
            .await?;
        // A raised limit may free work a claim here waits for.
        self.inner.work.bump();
        Ok(policy)
    }

    async fn remove_policy(&self, namespace: &str, name: &str) -> Result<bool, EngineError> {
        let p = self.keys().flow_home(namespace);
        let key = self.keys().policies(p, namespace);
        let usage = self.keys().usage(p, namespace, name);
        let removed = self
            .apply_versioned(
                |fields| {
                    let version = version_of(&fields)?;
                    let mut plan = Plan::new(p);
                    let existed = fields.contains_key(name);
                    if existed {
                        plan.check_version(&key, version);
                        plan.put(&key, version + 1, &[]);
                        plan.hdel(&key, name);
                        plan.del(&usage);
                    }
                    Ok((plan, existed))
                },
                &key,
            )
            .await?;
        if removed {
            self.inner.work.bump();
        }
        Ok(removed)
    }

    async fn load_usage(&self, namespace: &str, policy: &str) -> Result<Usage, EngineError> {
        let p = self.keys().flow_home(namespace);
        let fields = self.hash(&self.keys().usage(p, namespace, policy)).await?;
        decode_usage(fields.get(USAGE_FIELD))
    }

    async fn update_usage(
        &self,
        namespace: &str,
        policy: &str,
        mut update: Box<dyn FnMut(Usage) -> Usage + Send>,
    ) -> Result<Usage, EngineError> {
        let p = self.keys().flow_home(namespace);
        let key = self.keys().usage(p, namespace, policy);
        let usage = self
            .apply_versioned(
                |fields| {
                    let version = version_of(&fields)?;
                    let usage = update(decode_usage(fields.get(USAGE_FIELD))?);
                    let held = HeldUsage {
                        window: usage.window_start,
                        used: &usage.used,
                    };
                    let mut plan = Plan::new(p);
                    plan.check_version(&key, version);
                    plan.put(
                        &key,
                        version + 1,
                        &[
                            (
                                USAGE_FIELD.to_owned(),
                                serde_json::to_string(&usage).map_err(EngineError::backend)?,
                            ),
                            (
                                HELD_FIELD.to_owned(),
                                serde_json::to_string(&held).map_err(EngineError::backend)?,
                            ),
                        ],
                    );
                    Ok((plan, usage))
                },
                &key,
            )
            .await?;
        // A window that started over may free a scope's work.
        self.inner.work.bump();
        Ok(usage)
    }

    async fn running_with_key(&self, namespace: &str, key: &str) -> Result<u32, EngineError> {
        let p = self.keys().flow_home(namespace);
        let n: u64 = self
            .inner
            .conn
            .query(
                redis::cmd("ZCOUNT")
                    .arg(self.keys().running_with_key(p, namespace, key))
                    .arg(format!("({}", self.now()))
                    .arg("+inf"),
            )
            .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn load_bucket(&self, namespace: &str, key: &str) -> Result<Option<Bucket>, EngineError> {
        let p = self.keys().flow_home(namespace);
        let text: Option<String> = self
            .inner
            .conn
            .query(
                redis::cmd("HGET")
                    .arg(self.keys().buckets(p, namespace))
                    .arg(key),
            )
            .await?;
        text.map(|t| {
            let (level, at) = t
                .split_once(':')
                .ok_or_else(|| EngineError::backend(format!("corrupt rate bucket {t:?}")))?;
            Ok(Bucket {
                level: level.parse().map_err(EngineError::backend)?,
                at: at.parse().map_err(EngineError::backend)?,
            })
        })
        .transpose()
    }

    fn passed_over_tally(&self) -> &PassedOver {
        &self.inner.passed_over
    }

    async fn pending_flow_members(
        &self,
        namespace: &str,
        scope: &str,
    ) -> Result<Vec<ExecutionId>, EngineError> {
        const PAGE: isize = 500;
        let p = self.keys().flow_home(namespace);
        let ids_key = self.keys().ids(p, namespace);
        let mut out = Vec::new();
        let mut start = 0isize;
        loop {
            let ids: Vec<String> = self
                .inner
                .conn
                .query(
                    redis::cmd("ZRANGE")
                        .arg(&ids_key)
                        .arg(start)
                        .arg(start + PAGE - 1),
                )
                .await?;
            for stored in self.load_many(p, &ids).await?.into_iter().flatten() {
                let e = &stored.exec;
                if e.flow.is_some()
                    && e.fairness_key.as_deref() == Some(scope)
                    && e.attempts.is_empty()
                    && matches!(e.state, State::Ready | State::Scheduled | State::Blocked)
                {
                    out.push(e.id);
                }
            }
            if (ids.len() as isize) < PAGE {
                return Ok(out);
            }
            start += PAGE;
        }
    }
}

impl ValkeyBackend {
    /// Counts what a claim's answer says it passed over: `c,r,b`.
    pub(crate) fn note_passed_over(&self, counts: &str) {
        let mut parts = counts.split(',').map(|n| n.parse::<u64>().unwrap_or(0));
        if counts.is_empty() {
            return;
        }
        self.inner.passed_over.add_counts(PassedOverCounts {
            concurrency: parts.next().unwrap_or(0),
            rate: parts.next().unwrap_or(0),
            budget: parts.next().unwrap_or(0),
        });
    }
}
