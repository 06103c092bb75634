//! `ExecutionOps`: submit (one statement per batch), cancel, requeue.

use std::collections::HashMap;

use async_trait::async_trait;

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
        let stored = self.stored_by_key(keys.iter().flatten()).await?;
        let now = self.now();
        let mut answers = Vec::with_capacity(reqs.len());
        let mut fresh: Vec<Execution> = Vec::new();
        // Keys taken by an earlier request of this batch: its index in `fresh`.
        let mut batch_keys: HashMap<&Key, usize> = HashMap::new();
        for (req, key) in reqs.into_iter().zip(&keys) {
            if let Some(key) = key {
                let holder = stored
                    .get(key)
                    .or_else(|| batch_keys.get(key).map(|&i| &fresh[i]));
                if let Some(holder) = holder {
                    answers.push(Submitted::repeat_of(holder, &req));
                    continue;
                }
                batch_keys.insert(key, fresh.len());
            }
            let exec = Execution::new(ExecutionId::new(), req, now);
            answers.push(Submitted::created(exec.id));
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
            let winners = self.stored_by_key(lost.iter()).await?;
            let by_id: HashMap<ExecutionId, &Execution> = fresh.iter().map(|e| (e.id, e)).collect();
            for (answer, key) in answers.iter_mut().zip(&keys) {
                if answer.created && !inserted.contains(&answer.id) {
                    let winner = key.as_ref().and_then(|k| winners.get(k));
                    let (Some(winner), Some(lost)) = (winner, by_id.get(&answer.id)) else {
                        return Err(EngineError::backend("an execution vanished during submit"));
                    };
                    *answer = Submitted {
                        id: winner.id,
                        created: false,
                        conflicting_spec: !winner.same_spec(lost),
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
    async fn stored_by_key<'k>(
        &self,
        keys: impl Iterator<Item = &'k Key>,
    ) -> Result<HashMap<Key, Execution>, EngineError> {
        let (namespaces, keys): (Vec<&str>, Vec<&str>) =
            keys.map(|(n, k)| (n.as_str(), k.as_str())).unzip();
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(concat!(
            rows::select_stored!(),
            " e JOIN unnest($1::text[], $2::text[]) AS k(key_namespace, key) \
               ON e.namespace = k.key_namespace AND e.idempotency_key = k.key"
        ))
        .bind(namespaces)
        .bind(keys)
        .fetch_all(&self.inner.pool)
        .await
        .db()?;
        rows.iter()
            .map(|row| {
                let exec = rows::read_stored(row)?.exec;
                let key = exec.idempotency_key.clone().unwrap_or_default();
                Ok(((exec.namespace.clone(), key), exec))
            })
            .collect()
    }
}
