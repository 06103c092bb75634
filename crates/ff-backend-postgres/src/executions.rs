//! `ExecutionOps`: submit (one statement per batch), cancel, requeue.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::Row;

use ff_core::execution::validate_batch;
use ff_core::{
    lifecycle, CancelResponse, EngineError, Execution, ExecutionId, ExecutionOps, State,
    SubmitRequest, Submitted,
};

use crate::rows;
use crate::{PgResult, PostgresBackend};

#[async_trait]
impl ExecutionOps for PostgresBackend {
    async fn submit(&self, req: SubmitRequest) -> Result<Submitted, EngineError> {
        req.validate(&self.inner.limits)?;
        let mut out = self.insert_requests(vec![req]).await?;
        out.pop()
            .ok_or_else(|| EngineError::backend("submit stored nothing"))
    }

    async fn submit_batch(&self, reqs: Vec<SubmitRequest>) -> Result<Vec<Submitted>, EngineError> {
        // The whole batch is checked first, and goes in as one statement:
        // all of it commits or none.
        validate_batch(&reqs, &self.inner.limits)?;
        self.insert_requests(reqs).await
    }

    async fn cancel(&self, id: ExecutionId) -> Result<CancelResponse, EngineError> {
        self.transition(id, lifecycle::cancel).await
    }

    async fn requeue(&self, id: ExecutionId) -> Result<(), EngineError> {
        self.transition(id, lifecycle::requeue).await?
    }
}

type Key = (String, String);

impl PostgresBackend {
    /// Stores validated requests. A request whose idempotency key is taken
    /// in its namespace (by a stored execution or an earlier request of the
    /// batch) answers with that execution's id instead.
    #[tracing::instrument(level = "trace", skip_all, fields(count = reqs.len()))]
    async fn insert_requests(
        &self,
        reqs: Vec<SubmitRequest>,
    ) -> Result<Vec<Submitted>, EngineError> {
        let keys: Vec<Option<Key>> = reqs
            .iter()
            .map(|r| {
                r.idempotency_key
                    .clone()
                    .map(|k| (r.resolved_namespace().to_owned(), k))
            })
            .collect();
        let mut known = self.ids_by_key(keys.iter().flatten()).await?;
        let now = self.now();
        let mut answers = Vec::with_capacity(reqs.len());
        let mut fresh = Vec::new();
        for (req, key) in reqs.into_iter().zip(&keys) {
            if let Some(id) = key.as_ref().and_then(|k| known.get(k)) {
                answers.push(Submitted {
                    id: *id,
                    created: false,
                });
                continue;
            }
            let exec = Execution::new(ExecutionId::new(), req, now);
            if let Some(key) = key {
                known.insert(key.clone(), exec.id);
            }
            answers.push(Submitted {
                id: exec.id,
                created: true,
            });
            fresh.push(exec);
        }
        if fresh.is_empty() {
            return Ok(answers);
        }
        let inserted = rows::insert_batch(&self.inner.pool, &fresh, true).await?;
        self.note_churn(inserted.len());
        if inserted.len() < fresh.len() {
            // Another writer stored some of the keys between our read and
            // our insert: those answer with its executions.
            let inserted: std::collections::HashSet<_> = inserted.into_iter().collect();
            let lost: Vec<Key> = fresh
                .iter()
                .filter(|e| !inserted.contains(&e.id))
                .filter_map(|e| e.idempotency_key.clone().map(|k| (e.namespace.clone(), k)))
                .collect();
            let winners = self.ids_by_key(lost.iter()).await?;
            for (answer, key) in answers.iter_mut().zip(&keys) {
                if answer.created && !inserted.contains(&answer.id) {
                    let winner = key.as_ref().and_then(|k| winners.get(k)).ok_or_else(|| {
                        EngineError::backend("an execution vanished during submit")
                    })?;
                    *answer = Submitted {
                        id: *winner,
                        created: false,
                    };
                }
            }
        }
        if fresh.iter().any(|e| e.state == State::Ready) {
            self.inner.work.bump();
        }
        Ok(answers)
    }

    /// The stored executions holding `keys`.
    async fn ids_by_key<'k>(
        &self,
        keys: impl Iterator<Item = &'k Key>,
    ) -> Result<HashMap<Key, ExecutionId>, EngineError> {
        let (namespaces, keys): (Vec<&str>, Vec<&str>) =
            keys.map(|(n, k)| (n.as_str(), k.as_str())).unzip();
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(
            "SELECT e.namespace, e.idempotency_key, e.id FROM executions e \
             JOIN unnest($1::text[], $2::text[]) AS k(namespace, key) \
               ON e.namespace = k.namespace AND e.idempotency_key = k.key",
        )
        .bind(namespaces)
        .bind(keys)
        .fetch_all(&self.inner.pool)
        .await
        .db()?;
        rows.iter()
            .map(|row| {
                Ok((
                    (row.try_get(0).db()?, row.try_get(1).db()?),
                    ExecutionId::from_uuid(row.try_get(2).db()?),
                ))
            })
            .collect()
    }
}
