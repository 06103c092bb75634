//! `SignalStore`: the keyring in one hash (a field per key id, holding
//! `{secret, created_at, verify_until}`).

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use ff_core::suspension::{KeyringCache, WaitpointKey, WaitpointSecret};
use ff_core::{EngineError, Millis, SignalStore};

use crate::ValkeyBackend;

/// One key as its hash field holds it.
#[derive(Serialize, Deserialize)]
struct StoredKey {
    secret: String,
    created_at: Millis,
    verify_until: Option<Millis>,
}

impl StoredKey {
    fn of(key: &WaitpointKey) -> Self {
        Self {
            secret: key.secret.to_hex(),
            created_at: key.created_at,
            verify_until: key.verify_until,
        }
    }

    fn encode(&self) -> Result<String, EngineError> {
        serde_json::to_string(self).map_err(EngineError::backend)
    }
}

impl ValkeyBackend {
    async fn read_keys(&self) -> Result<Vec<WaitpointKey>, EngineError> {
        let fields: HashMap<String, String> = self
            .inner
            .conn
            .query(redis::cmd("HGETALL").arg(self.keys().waitpoint_keys()))
            .await?;
        fields
            .into_iter()
            .map(|(kid, body)| {
                let corrupt =
                    |e: String| EngineError::backend(format!("corrupt waitpoint key: {e}"));
                let stored: StoredKey =
                    serde_json::from_str(&body).map_err(|e| corrupt(e.to_string()))?;
                Ok(WaitpointKey {
                    kid,
                    secret: WaitpointSecret::from_hex(&stored.secret)
                        .map_err(|e| corrupt(e.to_string()))?,
                    created_at: stored.created_at,
                    verify_until: stored.verify_until,
                })
            })
            .collect()
    }
}

#[async_trait]
impl SignalStore for ValkeyBackend {
    fn keyring_cache(&self) -> &KeyringCache {
        &self.inner.keyring
    }

    async fn load_waitpoint_keys(&self) -> Result<Vec<WaitpointKey>, EngineError> {
        let keys = self.read_keys().await?;
        if !keys.is_empty() {
            return Ok(keys);
        }
        // Concurrent openers meet at HSETNX; all read the winner's key.
        let first = WaitpointKey {
            kid: "k1".to_owned(),
            secret: WaitpointSecret::random(),
            created_at: self.now(),
            verify_until: None,
        };
        let _: bool = self
            .inner
            .conn
            .query(
                redis::cmd("HSETNX")
                    .arg(self.keys().waitpoint_keys())
                    .arg(&first.kid)
                    .arg(StoredKey::of(&first).encode()?),
            )
            .await?;
        self.read_keys().await
    }

    /// The new key goes in first (HSETNX: a concurrent rotation to the same
    /// kid loses), then the older keys get their `verify_until`. A crash
    /// between the two leaves two signing keys, the newer signing and the
    /// older verifying until the next rotation: never none.
    async fn add_waitpoint_key(
        &self,
        key: WaitpointKey,
        verify_until: Millis,
    ) -> Result<(), EngineError> {
        let hash = self.keys().waitpoint_keys();
        let older = self.read_keys().await?;
        let inserted: bool = self
            .inner
            .conn
            .query(
                redis::cmd("HSETNX")
                    .arg(&hash)
                    .arg(&key.kid)
                    .arg(StoredKey::of(&key).encode()?),
            )
            .await?;
        if !inserted {
            return Err(EngineError::conflict(format!(
                "waitpoint key `{}` exists already",
                key.kid
            )));
        }
        let mut update = redis::cmd("HSET");
        update.arg(&hash);
        let mut any = false;
        for mut old in older {
            if old.verify_until.is_none_or(|until| until > verify_until) {
                old.verify_until = Some(verify_until);
                update.arg(&old.kid).arg(StoredKey::of(&old).encode()?);
                any = true;
            }
        }
        if any {
            let _: i64 = self.inner.conn.query(&update).await?;
        }
        Ok(())
    }

    fn now_ms(&self) -> Millis {
        self.now()
    }
}
