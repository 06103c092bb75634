//! `SignalOps`: waitpoints, suspend and signals. A backend implements the
//! storage side, [`SignalStore`] (its keyring and its timeout scan); the
//! operations follow from it here, once (the timeout scan is
//! [`super::MaintenanceOps::expire_suspensions`]): input checked against the limits,
//! tokens minted and verified in Rust, and each operation one
//! [`ExecutionStore::transition`] running a `suspension` rule, so deliver,
//! evaluate and resume are one atomic step on every backend.

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::Millis;
use crate::error::EngineError;
use crate::ids::ExecutionId;
use crate::lease::LeaseHandle;
use crate::suspension::rules::{self, SuspendDecision};
use crate::suspension::token::{KEYRING_RELOAD_MIN_MS, MIN_ROTATION_GRACE_MS};
use crate::suspension::{
    Keyring, KeyringCache, SignalRequest, SignalResponse, SuspendRequest, SuspendResponse,
    Waitpoint, WaitpointGrant, WaitpointKey, WaitpointRequest, WaitpointSecret,
};

use super::ExecutionStore;

#[async_trait]
pub trait SignalOps: Send + Sync {
    /// Creates a waitpoint for the running attempt of `handle` (or answers
    /// with the one it created already) and its token. Signals to it are
    /// kept until the handler suspends on it.
    async fn create_waitpoint(
        &self,
        handle: &LeaseHandle,
        req: &WaitpointRequest,
    ) -> Result<WaitpointGrant, EngineError>;

    /// Suspends the running attempt of `handle` and releases its lease, or
    /// answers `AlreadySatisfied` (the lease kept) when signals delivered
    /// already satisfy the condition. Idempotent per handle and `req.key`.
    async fn suspend(
        &self,
        handle: &LeaseHandle,
        req: &SuspendRequest,
    ) -> Result<SuspendResponse, EngineError>;

    /// Delivers a signal with a waitpoint token: the token alone
    /// authorises it, for exactly its waitpoint.
    async fn signal_by_token(
        &self,
        token: &str,
        req: &SignalRequest,
    ) -> Result<SignalResponse, EngineError>;

    /// Delivers a signal to `waitpoint` of execution `id` in `namespace`
    /// (an operator's call, behind the API's own authentication).
    async fn signal(
        &self,
        namespace: &str,
        id: ExecutionId,
        waitpoint: &str,
        req: &SignalRequest,
    ) -> Result<SignalResponse, EngineError>;

    /// Makes a new key (`secret`, or a random one) the signing key; the
    /// older keys verify for `grace_ms` more. Returns the new key id.
    async fn rotate_waitpoint_key(
        &self,
        secret: Option<WaitpointSecret>,
        grace_ms: u64,
    ) -> Result<String, EngineError>;

    /// Makes `secret` the signing key unless it is already (rotating to
    /// it, older keys verifying for `grace_ms` more), so every server given
    /// the same secret signs the same tokens. Returns the new key id when
    /// it rotated.
    async fn adopt_waitpoint_secret(
        &self,
        secret: WaitpointSecret,
        grace_ms: u64,
    ) -> Result<Option<String>, EngineError>;

    /// The token the signing key gives a waitpoint: the same string on
    /// every backend holding the same key.
    async fn waitpoint_token(
        &self,
        namespace: &str,
        id: ExecutionId,
        waitpoint: &str,
        expires_at: Millis,
    ) -> Result<String, EngineError>;
}

/// The storage side of the signal operations. Implementing it gives a
/// backend [`SignalOps`].
#[async_trait]
pub trait SignalStore: ExecutionStore {
    /// The backend's cached keyring.
    fn keyring_cache(&self) -> &KeyringCache;

    /// The stored waitpoint keys; on a store that has none, one random key
    /// `k1` is stored first (once, also when several servers open it at
    /// the same moment).
    async fn load_waitpoint_keys(&self) -> Result<Vec<WaitpointKey>, EngineError>;

    /// Stores `key` and sets `verify_until` on every other key that has
    /// none or a later one, in one atomic step.
    async fn add_waitpoint_key(
        &self,
        key: WaitpointKey,
        verify_until: Millis,
    ) -> Result<(), EngineError>;

    /// The store's clock.
    fn now_ms(&self) -> Millis;
}

/// The keyring, read again when older than the refresh interval.
async fn keyring<S: SignalStore + ?Sized>(store: &S) -> Result<Arc<Keyring>, EngineError> {
    let now = store.now_ms();
    if let Some(ring) = store.keyring_cache().fresh(now) {
        return Ok(ring);
    }
    let ring = Keyring::new(store.load_waitpoint_keys().await?)?;
    Ok(store.keyring_cache().store(ring, now))
}

fn grant(ring: &Keyring, namespace: &str, id: ExecutionId, waitpoint: Waitpoint) -> WaitpointGrant {
    WaitpointGrant {
        token: ring.mint(namespace, id, &waitpoint.key, waitpoint.expires_at),
        key: waitpoint.key,
        expires_at: waitpoint.expires_at,
    }
}

#[async_trait]
impl<S: SignalStore> SignalOps for S {
    async fn create_waitpoint(
        &self,
        handle: &LeaseHandle,
        req: &WaitpointRequest,
    ) -> Result<WaitpointGrant, EngineError> {
        req.validate(self.limits())?;
        let ring = keyring(self).await?;
        let (handle, req, limits) = (handle.clone(), req.clone(), self.limits().clone());
        let namespace = handle.namespace.clone();
        let id = handle.execution_id;
        let waitpoint = self
            .transition(id, move |exec, now| {
                rules::create_waitpoint(exec, &handle, &req, &limits, now)
            })
            .await??;
        Ok(grant(&ring, &namespace, id, waitpoint))
    }

    async fn suspend(
        &self,
        handle: &LeaseHandle,
        req: &SuspendRequest,
    ) -> Result<SuspendResponse, EngineError> {
        req.validate(self.limits())?;
        let ring = keyring(self).await?;
        let (handle, req, limits) = (handle.clone(), req.clone(), self.limits().clone());
        let namespace = handle.namespace.clone();
        let id = handle.execution_id;
        let decision = self
            .transition(id, move |exec, now| {
                rules::suspend(exec, &handle, &req, &limits, now)
            })
            .await??;
        Ok(match decision {
            SuspendDecision::Suspended {
                waitpoints,
                timeout_at,
            } => SuspendResponse::Suspended {
                waitpoints: waitpoints
                    .into_iter()
                    .map(|w| grant(&ring, &namespace, id, w))
                    .collect(),
                timeout_at,
            },
            SuspendDecision::AlreadySatisfied { signals } => {
                SuspendResponse::AlreadySatisfied { signals }
            }
        })
    }

    async fn signal_by_token(
        &self,
        token: &str,
        req: &SignalRequest,
    ) -> Result<SignalResponse, EngineError> {
        req.validate(self.limits())?;
        let mut ring = keyring(self).await?;
        let claims = match ring.verify(token) {
            Ok(claims) => claims,
            Err(first) => {
                // A key rotated in by another server since the last read
                // is worth one more read, at most once a second.
                let unknown_kid = Keyring::kid_of(token).is_some_and(|kid| !ring.has_kid(&kid));
                if !unknown_kid {
                    return Err(first);
                }
                let cache = self.keyring_cache();
                if !cache.loaded_before(self.now_ms(), KEYRING_RELOAD_MIN_MS) {
                    // Maybe a key rotated in a moment ago: worth a retry.
                    return Err(EngineError::Unavailable {
                        message: "the token names a key this server has not read yet; retry"
                            .to_owned(),
                    });
                }
                cache.clear();
                ring = keyring(self).await?;
                ring.verify(token).map_err(|_| first)?
            }
        };
        let (req, limits) = (req.clone(), self.limits().clone());
        let id = claims.execution_id;
        self.transition(id, move |exec, now| {
            if exec.namespace != claims.namespace {
                return Err(EngineError::execution_not_found(id));
            }
            rules::deliver(
                exec,
                &claims.waitpoint,
                Some((&ring, &claims)),
                &req,
                &limits,
                now,
            )
        })
        .await?
    }

    async fn signal(
        &self,
        namespace: &str,
        id: ExecutionId,
        waitpoint: &str,
        req: &SignalRequest,
    ) -> Result<SignalResponse, EngineError> {
        req.validate(self.limits())?;
        self.limits().check_name("waitpoint", waitpoint)?;
        let (req, limits) = (req.clone(), self.limits().clone());
        let (namespace, waitpoint) = (namespace.to_owned(), waitpoint.to_owned());
        self.transition(id, move |exec, now| {
            if exec.namespace != namespace {
                return Err(EngineError::execution_not_found(id));
            }
            rules::deliver(exec, &waitpoint, None, &req, &limits, now)
        })
        .await?
    }

    async fn rotate_waitpoint_key(
        &self,
        secret: Option<WaitpointSecret>,
        grace_ms: u64,
    ) -> Result<String, EngineError> {
        if grace_ms < MIN_ROTATION_GRACE_MS {
            return Err(EngineError::invalid(
                "grace_ms",
                format!("must be at least {MIN_ROTATION_GRACE_MS} ms, so no server signs with a retired key"),
            ));
        }
        self.keyring_cache().clear();
        let ring = keyring(self).await?;
        // Rotating to the secret that signs already changes nothing: two
        // servers adopting one secret at once rotate once.
        if secret.as_ref() == Some(&ring.signing().secret) {
            return Ok(ring.signing().kid.clone());
        }
        let now = self.now_ms();
        let kid = ring.next_kid();
        let key = WaitpointKey {
            kid: kid.clone(),
            secret: secret.unwrap_or_else(WaitpointSecret::random),
            created_at: now.max(ring.signing().created_at + 1),
            verify_until: None,
        };
        let grace = Millis::try_from(grace_ms).unwrap_or(Millis::MAX);
        self.add_waitpoint_key(key, now.saturating_add(grace))
            .await?;
        self.keyring_cache().clear();
        Ok(kid)
    }

    async fn adopt_waitpoint_secret(
        &self,
        secret: WaitpointSecret,
        grace_ms: u64,
    ) -> Result<Option<String>, EngineError> {
        self.keyring_cache().clear();
        if keyring(self).await?.signing().secret == secret {
            return Ok(None);
        }
        match self
            .rotate_waitpoint_key(Some(secret.clone()), grace_ms)
            .await
        {
            Ok(kid) => Ok(Some(kid)),
            // Another server adopting the same secret got there first.
            Err(err) if err.kind() == crate::ErrorKind::Conflict => {
                self.keyring_cache().clear();
                if keyring(self).await?.signing().secret == secret {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
            Err(err) => Err(err),
        }
    }

    async fn waitpoint_token(
        &self,
        namespace: &str,
        id: ExecutionId,
        waitpoint: &str,
        expires_at: Millis,
    ) -> Result<String, EngineError> {
        self.limits().check_name("namespace", namespace)?;
        self.limits().check_name("waitpoint", waitpoint)?;
        Ok(keyring(self)
            .await?
            .mint(namespace, id, waitpoint, expires_at))
    }
}
