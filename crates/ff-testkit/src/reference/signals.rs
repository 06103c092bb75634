//! `SignalStore` for the reference backend: the keyring in the store.

use async_trait::async_trait;
use ff_core::suspension::{KeyringCache, WaitpointKey, WaitpointSecret};
use ff_core::{EngineError, Millis, SignalStore};

use super::ReferenceBackend;

#[async_trait]
impl SignalStore for ReferenceBackend {
    fn keyring_cache(&self) -> &KeyringCache {
        &self.inner.keyring
    }

    async fn load_waitpoint_keys(&self) -> Result<Vec<WaitpointKey>, EngineError> {
        let now = self.now();
        Ok(self.with_store(|store, _| {
            if store.waitpoint_keys.is_empty() {
                store.waitpoint_keys.push(WaitpointKey {
                    kid: "k1".to_owned(),
                    secret: WaitpointSecret::random(),
                    created_at: now,
                    verify_until: None,
                });
            }
            store.waitpoint_keys.clone()
        }))
    }

    async fn add_waitpoint_key(
        &self,
        key: WaitpointKey,
        verify_until: Millis,
    ) -> Result<(), EngineError> {
        self.with_store(|store, _| {
            if store.waitpoint_keys.iter().any(|k| k.kid == key.kid) {
                return Err(EngineError::conflict(format!(
                    "waitpoint key `{}` exists already",
                    key.kid
                )));
            }
            for old in &mut store.waitpoint_keys {
                if old.verify_until.is_none_or(|until| until > verify_until) {
                    old.verify_until = Some(verify_until);
                }
            }
            store.waitpoint_keys.push(key);
            Ok(())
        })
    }

    fn now_ms(&self) -> Millis {
        self.now()
    }
}
