//! `SignalStore`: the keyring in `waitpoint_keys`.

use async_trait::async_trait;
use sqlx::Row;

use ff_core::suspension::{KeyringCache, WaitpointKey, WaitpointSecret};
use ff_core::{EngineError, Millis, SignalStore};

use crate::{PgResult, PostgresBackend};

#[async_trait]
impl SignalStore for PostgresBackend {
    fn keyring_cache(&self) -> &KeyringCache {
        &self.inner.keyring
    }

    async fn load_waitpoint_keys(&self) -> Result<Vec<WaitpointKey>, EngineError> {
        // The first key is created once: concurrent openers meet at the
        // primary key, and every one of them reads the winner's key.
        sqlx::query(
            "INSERT INTO waitpoint_keys (kid, secret, created_at) \
             SELECT 'k1', $1, $2 WHERE NOT EXISTS (SELECT 1 FROM waitpoint_keys) \
             ON CONFLICT (kid) DO NOTHING",
        )
        .bind(WaitpointSecret::random().to_hex())
        .bind(self.now())
        .execute(&self.inner.pool)
        .await
        .db()?;
        let rows = sqlx::query("SELECT kid, secret, created_at, verify_until FROM waitpoint_keys")
            .fetch_all(&self.inner.pool)
            .await
            .db()?;
        rows.iter()
            .map(|row| {
                let secret: &str = row.try_get(1).db()?;
                Ok(WaitpointKey {
                    kid: row.try_get(0).db()?,
                    secret: WaitpointSecret::from_hex(secret)
                        .map_err(|e| EngineError::backend(format!("corrupt waitpoint key: {e}")))?,
                    created_at: row.try_get(2).db()?,
                    verify_until: row.try_get(3).db()?,
                })
            })
            .collect()
    }

    async fn add_waitpoint_key(
        &self,
        key: WaitpointKey,
        verify_until: Millis,
    ) -> Result<(), EngineError> {
        let mut tx = self.inner.pool.begin().await.db()?;
        sqlx::query(
            "UPDATE waitpoint_keys SET verify_until = $1 \
             WHERE verify_until IS NULL OR verify_until > $1",
        )
        .bind(verify_until)
        .execute(&mut *tx)
        .await
        .db()?;
        let inserted = sqlx::query(
            "INSERT INTO waitpoint_keys (kid, secret, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (kid) DO NOTHING",
        )
        .bind(&key.kid)
        .bind(key.secret.to_hex())
        .bind(key.created_at)
        .execute(&mut *tx)
        .await
        .db()?;
        if inserted.rows_affected() == 0 {
            return Err(EngineError::conflict(format!(
                "waitpoint key `{}` exists already",
                key.kid
            )));
        }
        tx.commit().await.db()
    }

    fn now_ms(&self) -> Millis {
        self.now()
    }
}
