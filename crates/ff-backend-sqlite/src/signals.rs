//! `SignalStore`: the keyring in `waitpoint_keys`.

use async_trait::async_trait;
use rusqlite::{params, Connection};

use ff_core::suspension::{KeyringCache, WaitpointKey, WaitpointSecret};
use ff_core::{EngineError, Millis, SignalStore};

use crate::{SqlResult, SqliteBackend};

#[async_trait]
impl SignalStore for SqliteBackend {
    fn keyring_cache(&self) -> &KeyringCache {
        &self.inner.keyring
    }

    async fn load_waitpoint_keys(&self) -> Result<Vec<WaitpointKey>, EngineError> {
        self.inner
            .writer
            .write(move |ctx| {
                let conn = ctx.conn();
                conn.prepare_cached(
                    "INSERT INTO waitpoint_keys (kid, secret, created_at) \
                     SELECT 'k1', ?1, ?2 WHERE NOT EXISTS (SELECT 1 FROM waitpoint_keys)",
                )
                .db()?
                .execute(params![WaitpointSecret::random().to_hex(), ctx.now])
                .db()?;
                read_keys(conn)
            })
            .await
    }

    async fn add_waitpoint_key(
        &self,
        key: WaitpointKey,
        verify_until: Millis,
    ) -> Result<(), EngineError> {
        self.inner
            .writer
            .write(move |ctx| {
                let conn = ctx.conn();
                conn.prepare_cached(
                    "UPDATE waitpoint_keys SET verify_until = ?1 \
                     WHERE verify_until IS NULL OR verify_until > ?1",
                )
                .db()?
                .execute([verify_until])
                .db()?;
                let inserted = conn
                    .prepare_cached(
                        "INSERT INTO waitpoint_keys (kid, secret, created_at) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (kid) DO NOTHING",
                    )
                    .db()?
                    .execute(params![key.kid, key.secret.to_hex(), key.created_at])
                    .db()?;
                if inserted == 0 {
                    return Err(EngineError::conflict(format!(
                        "waitpoint key `{}` exists already",
                        key.kid
                    )));
                }
                Ok(())
            })
            .await
    }

    fn now_ms(&self) -> Millis {
        self.inner.clock.now_ms()
    }
}

fn read_keys(conn: &Connection) -> Result<Vec<WaitpointKey>, EngineError> {
    let mut stmt = conn
        .prepare_cached("SELECT kid, secret, created_at, verify_until FROM waitpoint_keys")
        .db()?;
    let mut rows = stmt.query([]).db()?;
    let mut keys = Vec::new();
    while let Some(row) = rows.next().db()? {
        let secret: String = row.get(1).db()?;
        keys.push(WaitpointKey {
            kid: row.get(0).db()?,
            secret: WaitpointSecret::from_hex(&secret)
                .map_err(|e| EngineError::backend(format!("corrupt waitpoint key: {e}")))?,
            created_at: row.get(2).db()?,
            verify_until: row.get(3).db()?,
        });
    }
    Ok(keys)
}
