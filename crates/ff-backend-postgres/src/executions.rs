//! `ExecutionStore`: the storage side of the execution and lease operations
//! (`ff_core` checks the requests and derives `ExecutionOps`/`LeaseOps`);
//! submit is one statement per batch.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;

use ff_core::{
    ClaimRequest, Claimed, EngineError, Execution, ExecutionId, ExecutionStore, Limits, Rule,
    State, SubmitRequest, Submitted, Valid,
};

use crate::{leases, rows, transition};
use crate::{PgResult, PostgresBackend};

#[async_trait]
impl ExecutionStore for PostgresBackend {
    fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    async fn transition<T: Send + 'static, R: Rule<T>>(
        &self,
        id: ExecutionId,
        rule: R,
    ) -> Result<T, EngineError> {
        transition::transition(self, id, rule).await
    }

    async fn claim_valid(&self, req: &Valid<ClaimRequest>) -> Result<Vec<Claimed>, EngineError> {
        leases::claim(self, req).await
    }

    async fn claim_wait_valid(
        &self,
        req: &Valid<ClaimRequest>,
        timeout: Duration,
    ) -> Result<Vec<Claimed>, EngineError> {
        let claim = || leases::claim(self, req);
        ff_backend_support::claim_wait(&self.inner.work, timeout, leases::RECHECK, claim).await
    }

    /// The whole batch goes in as one statement: all of it commits or none.
    async fn submit_valid(
        &self,
        reqs: Valid<Vec<SubmitRequest>>,
    ) -> Result<Vec<Submitted>, EngineError> {
        self.insert_requests(reqs.into_inner()).await
    }
}

type Key = (String, String);

impl PostgresBackend {
    /// Stores validated requests. A request whose idempotency key is taken
    /// in its namespace (by a stored execution or an earlier request of the
    /// batch) answers with that execution's id instead.
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
