//! Flow control's store: the policies in `flow_policies`, the budgets'
//! usage in `budget_usage`, and the reads `why` and the metrics make of the
//! state limited claims keep (`claim_limited`).

use async_trait::async_trait;
use sqlx::Row;

use ff_core::flow_control::{Bucket, PassedOver, Policy, PolicySpec, Usage};
use ff_core::{EngineError, ExecutionId, FlowControlStore};

use crate::rows::to_json;
use crate::{PgResult, PostgresBackend};

impl PostgresBackend {
    pub(crate) fn is_limited(&self, namespace: &str) -> bool {
        self.limited_set().contains(namespace)
    }

    pub(crate) fn mark_limited(&self, namespace: &str, limited: bool) {
        let mut set = self.limited_set();
        if limited {
            set.insert(namespace.to_owned());
        } else {
            set.remove(namespace);
        }
    }

    fn limited_set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.inner
            .limited
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether `namespace` has policies (remembered for its next claims).
pub(crate) async fn has_policies(
    backend: &PostgresBackend,
    namespace: &str,
) -> Result<bool, EngineError> {
    let has: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM flow_policies WHERE namespace = $1)")
            .bind(namespace)
            .fetch_one(&backend.inner.pool)
            .await
            .db()?;
    backend.mark_limited(namespace, has);
    Ok(has)
}

async fn load_policies<'e>(
    conn: impl sqlx::PgExecutor<'e>,
    namespace: &str,
) -> Result<Vec<Policy>, EngineError> {
    let rows = sqlx::query(
        "SELECT name, version, spec, updated_at FROM flow_policies \
         WHERE namespace = $1 ORDER BY name",
    )
    .bind(namespace)
    .fetch_all(conn)
    .await
    .db()?;
    rows.iter()
        .map(|row| {
            let spec: &str = row.try_get(2).db()?;
            Ok(Policy {
                namespace: namespace.to_owned(),
                name: row.try_get(0).db()?,
                version: u64::try_from(row.try_get::<i64, _>(1).db()?).unwrap_or(0),
                spec: serde_json::from_str(spec).map_err(EngineError::backend)?,
                updated_at: row.try_get(3).db()?,
            })
        })
        .collect()
}

/// A stored JSON document, or the default when there is none.
pub(crate) fn json_or_default<T: serde::de::DeserializeOwned + Default>(
    text: Option<String>,
) -> Result<T, EngineError> {
    text.map(json).transpose().map(Option::unwrap_or_default)
}

#[async_trait]
impl FlowControlStore for PostgresBackend {
    async fn load_policies(&self, namespace: &str) -> Result<Vec<Policy>, EngineError> {
        load_policies(&self.inner.pool, namespace).await
    }

    async fn store_policy(
        &self,
        namespace: &str,
        name: &str,
        spec: &PolicySpec,
    ) -> Result<Policy, EngineError> {
        let now = self.now();
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO flow_policies (namespace, name, version, spec, updated_at) \
             VALUES ($1, $2, 1, $3, $4) ON CONFLICT (namespace, name) DO UPDATE \
             SET version = flow_policies.version + 1, spec = excluded.spec, \
             updated_at = excluded.updated_at RETURNING version",
        )
        .bind(namespace)
        .bind(name)
        .bind(to_json(spec)?)
        .bind(now)
        .fetch_one(&self.inner.pool)
        .await
        .db()?;
        self.mark_limited(namespace, true);
        Ok(Policy {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            version: u64::try_from(version).unwrap_or(0),
            spec: spec.clone(),
            updated_at: now,
        })
    }

    async fn remove_policy(&self, namespace: &str, name: &str) -> Result<bool, EngineError> {
        let mut tx = self.inner.pool.begin().await.db()?;
        sqlx::query("DELETE FROM budget_usage WHERE namespace = $1 AND policy = $2")
            .bind(namespace)
            .bind(name)
            .execute(&mut *tx)
            .await
            .db()?;
        let removed = sqlx::query("DELETE FROM flow_policies WHERE namespace = $1 AND name = $2")
            .bind(namespace)
            .bind(name)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
        tx.commit().await.db()?;
        Ok(removed > 0)
    }

    async fn load_usage(&self, namespace: &str, policy: &str) -> Result<Usage, EngineError> {
        let text: Option<String> = sqlx::query_scalar(
            "SELECT usage FROM budget_usage WHERE namespace = $1 AND policy = $2",
        )
        .bind(namespace)
        .bind(policy)
        .fetch_optional(&self.inner.pool)
        .await
        .db()?;
        json_or_default::<Usage>(text)
    }

    async fn update_usage(
        &self,
        namespace: &str,
        policy: &str,
        mut update: Box<dyn FnMut(Usage) -> Usage + Send>,
    ) -> Result<Usage, EngineError> {
        let mut tx = self.inner.pool.begin().await.db()?;
        sqlx::query(
            "INSERT INTO budget_usage (namespace, policy, usage) VALUES ($1, $2, $3) \
             ON CONFLICT (namespace, policy) DO NOTHING",
        )
        .bind(namespace)
        .bind(policy)
        .bind(to_json(&Usage::default())?)
        .execute(&mut *tx)
        .await
        .db()?;
        let text: Option<String> = sqlx::query_scalar(
            "SELECT usage FROM budget_usage WHERE namespace = $1 AND policy = $2 FOR UPDATE",
        )
        .bind(namespace)
        .bind(policy)
        .fetch_optional(&mut *tx)
        .await
        .db()?;
        let usage = update(json_or_default::<Usage>(text)?);
        sqlx::query("UPDATE budget_usage SET usage = $3 WHERE namespace = $1 AND policy = $2")
            .bind(namespace)
            .bind(policy)
            .bind(to_json(&usage)?)
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()?;
        Ok(usage)
    }

    async fn running_with_key(&self, namespace: &str, key: &str) -> Result<u32, EngineError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM executions WHERE namespace = $1 AND concurrency_key = $2 \
             AND state = 'running' AND lease_until > $3 \
             AND (attempt_deadline IS NULL OR attempt_deadline > $3)",
        )
        .bind(namespace)
        .bind(key)
        .bind(self.now())
        .fetch_one(&self.inner.pool)
        .await
        .db()?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn load_bucket(&self, namespace: &str, key: &str) -> Result<Option<Bucket>, EngineError> {
        let row =
            sqlx::query("SELECT level, at FROM rate_buckets WHERE namespace = $1 AND key = $2")
                .bind(namespace)
                .bind(key)
                .fetch_optional(&self.inner.pool)
                .await
                .db()?;
        row.map(|row| {
            Ok(Bucket {
                level: u64::try_from(row.try_get::<i64, _>(0).db()?).unwrap_or(0),
                at: row.try_get(1).db()?,
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
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT id FROM executions WHERE namespace = $1 \
             AND fairness_key = $2 AND flow_id IS NOT NULL \
             AND state IN ('ready', 'scheduled', 'blocked') AND attempt = 0",
        )
        .bind(namespace)
        .bind(scope)
        .fetch_all(&self.inner.pool)
        .await
        .db()?;
        Ok(ids.into_iter().map(ExecutionId::from_uuid).collect())
    }
}

/// A stored JSON document.
pub(crate) fn json<T: serde::de::DeserializeOwned>(text: String) -> Result<T, EngineError> {
    serde_json::from_str(&text).map_err(EngineError::backend)
}
