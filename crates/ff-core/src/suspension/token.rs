//! Waitpoint tokens: `HMAC-SHA256(secret[kid], kid|namespace|execution
//! id|waitpoint key|expiry)`, written as the base64url (unpadded) message,
//! a `.`, and the base64url MAC. The message's fields cannot hold `|`
//! (names forbid it), so it splits back unambiguously. Minted and
//! verified here only, so every backend hands out and accepts the same
//! bytes; the MAC is compared in constant time.

use std::fmt;
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::clock::Millis;
use crate::error::EngineError;
use crate::ids::ExecutionId;

type HmacSha256 = Hmac<Sha256>;

/// How long a loaded keyring is trusted before it is read again, so a key
/// rotated by another server is picked up.
pub const KEYRING_REFRESH_MS: Millis = 60_000;
/// How often a token naming an unknown key id may make a server read its
/// keyring again (a key rotated in elsewhere), so forged tokens cannot
/// turn into a read each.
pub const KEYRING_RELOAD_MIN_MS: Millis = 1_000;
/// The shortest grace a rotation may give the keys it retires: longer than
/// [`KEYRING_REFRESH_MS`], so no server signs with a key that no longer
/// verifies.
pub const MIN_ROTATION_GRACE_MS: u64 = 2 * KEYRING_REFRESH_MS as u64;

/// A signing secret: 32 bytes, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct WaitpointSecret([u8; 32]);

impl WaitpointSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// 244 random bits from the operating system's generator (two
    /// version-4 UUIDs).
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self(bytes)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, EngineError> {
        let bad = || EngineError::invalid("waitpoint_secret", "must be 64 hex digits (32 bytes)");
        let text = text.trim();
        if text.len() != 64 || !text.is_ascii() {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(bytes))
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for WaitpointSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WaitpointSecret(..)")
    }
}

/// One key of the keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitpointKey {
    pub kid: String,
    pub secret: WaitpointSecret,
    pub created_at: Millis,
    /// Set when a newer key took over signing: it verifies until then.
    pub verify_until: Option<Millis>,
}

/// The keys tokens are signed and verified with. The newest key without a
/// `verify_until` signs; every key verifies until its `verify_until`.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<WaitpointKey>,
}

/// What a verified token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub kid: String,
    pub namespace: String,
    pub execution_id: ExecutionId,
    pub waitpoint: String,
    pub expires_at: Millis,
}

impl Keyring {
    /// A keyring of `keys`; at least one must be able to sign.
    pub fn new(mut keys: Vec<WaitpointKey>) -> Result<Self, EngineError> {
        keys.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
        if !keys.iter().any(|k| k.verify_until.is_none()) {
            return Err(EngineError::backend(
                "the waitpoint keyring has no signing key",
            ));
        }
        Ok(Self { keys })
    }

    /// The key that signs.
    pub fn signing(&self) -> &WaitpointKey {
        // `new` guarantees one; the last such is the newest.
        self.keys
            .iter()
            .rev()
            .find(|k| k.verify_until.is_none())
            .unwrap_or(&self.keys[self.keys.len() - 1])
    }

    /// Whether `kid` is one of the keyring's keys.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid == kid)
    }

    /// The key id a token claims to be signed with, unverified.
    pub fn kid_of(token: &str) -> Option<String> {
        let body = URL_SAFE_NO_PAD.decode(token.split_once('.')?.0).ok()?;
        let text = String::from_utf8(body).ok()?;
        text.split('|').next().map(str::to_owned)
    }

    /// The kid a rotation's new key gets: `k<n+1>` after the highest `k<n>`.
    pub fn next_kid(&self) -> String {
        let highest = self
            .keys
            .iter()
            .filter_map(|k| k.kid.strip_prefix('k')?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        format!("k{}", highest + 1)
    }

    /// The token for a waitpoint, signed with the signing key.
    pub fn mint(
        &self,
        namespace: &str,
        execution_id: ExecutionId,
        waitpoint: &str,
        expires_at: Millis,
    ) -> String {
        let key = self.signing();
        let message = format!(
            "{}|{namespace}|{execution_id}|{waitpoint}|{expires_at}",
            key.kid
        );
        let mac = mac_of(&key.secret, message.as_bytes())
            .finalize()
            .into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(message.as_bytes()),
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    /// Checks a token's signature (in constant time) and answers what it
    /// names. Time is checked apart, by [`Keyring::check_time`], inside the
    /// step that delivers the signal.
    pub fn verify(&self, token: &str) -> Result<TokenClaims, EngineError> {
        let malformed = || EngineError::invalid("token", "is not a waitpoint token");
        let (body, mac) = token.split_once('.').ok_or_else(malformed)?;
        let message = URL_SAFE_NO_PAD.decode(body).map_err(|_| malformed())?;
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| malformed())?;
        let text = std::str::from_utf8(&message).map_err(|_| malformed())?;
        let parts: Vec<&str> = text.split('|').collect();
        let [kid, namespace, id, waitpoint, expires_at] = parts[..] else {
            return Err(malformed());
        };
        let forged = || EngineError::invalid("token", "signature does not verify");
        let key = self.keys.iter().find(|k| k.kid == kid).ok_or_else(forged)?;
        mac_of(&key.secret, &message)
            .verify_slice(&mac)
            .map_err(|_| forged())?;
        Ok(TokenClaims {
            kid: kid.to_owned(),
            namespace: namespace.to_owned(),
            execution_id: id.parse().map_err(|_| malformed())?,
            waitpoint: waitpoint.to_owned(),
            expires_at: expires_at.parse().map_err(|_| malformed())?,
        })
    }

    /// Refuses a verified token that has expired at `now`, or whose key's
    /// grace has ended.
    pub fn check_time(&self, claims: &TokenClaims, now: Millis) -> Result<(), EngineError> {
        if now >= claims.expires_at {
            return Err(EngineError::invalid("token", "has expired"));
        }
        let retired = self
            .keys
            .iter()
            .find(|k| k.kid == claims.kid)
            .and_then(|k| k.verify_until)
            .is_some_and(|until| now >= until);
        if retired {
            return Err(EngineError::invalid(
                "token",
                "was signed with a key whose grace has ended",
            ));
        }
        Ok(())
    }
}

fn mac_of(secret: &WaitpointSecret, message: &[u8]) -> HmacSha256 {
    // HMAC accepts a key of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(&secret.0) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(message);
    mac
}

/// A backend's loaded keyring and when it was read, shared by its handles.
#[derive(Debug, Default)]
pub struct KeyringCache {
    loaded: RwLock<Option<(Arc<Keyring>, Millis)>>,
}

impl KeyringCache {
    /// The keyring read at most [`KEYRING_REFRESH_MS`] before `now`.
    pub fn fresh(&self, now: Millis) -> Option<Arc<Keyring>> {
        let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        loaded
            .as_ref()
            .filter(|(_, at)| now.saturating_sub(*at) < KEYRING_REFRESH_MS)
            .map(|(ring, _)| ring.clone())
    }

    /// Keeps `ring`, read at `now`.
    pub fn store(&self, ring: Keyring, now: Millis) -> Arc<Keyring> {
        let ring = Arc::new(ring);
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = Some((ring.clone(), now));
        ring
    }

    /// Whether the keyring was read at least `age` before `now` (or never).
    pub fn loaded_before(&self, now: Millis, age: Millis) -> bool {
        let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        loaded
            .as_ref()
            .is_none_or(|(_, at)| now.saturating_sub(*at) >= age)
    }

    /// Forgets the keyring, so the next use reads it again.
    pub fn clear(&self) {
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str, byte: u8, created_at: Millis, until: Option<Millis>) -> WaitpointKey {
        WaitpointKey {
            kid: kid.to_owned(),
            secret: WaitpointSecret::from_bytes([byte; 32]),
            created_at,
            verify_until: until,
        }
    }

    #[test]
    fn a_minted_token_verifies_and_names_its_waitpoint() {
        let ring = Keyring::new(vec![key("k1", 7, 1, None)]).expect("ring");
        let id = ExecutionId::new();
        let token = ring.mint("ns", id, "approve", 5_000);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        let claims = ring.verify(&token).expect("verifies");
        assert_eq!(claims.execution_id, id);
        assert_eq!(claims.waitpoint, "approve");
        assert_eq!(claims.namespace, "ns");
        assert!(ring.check_time(&claims, 4_999).is_ok());
        assert!(ring.check_time(&claims, 5_000).is_err());
    }

    #[test]
    fn the_token_is_the_same_bytes_for_the_same_inputs() {
        let id: ExecutionId = "0190f3a0-0000-7000-8000-000000000001".parse().expect("id");
        let ring = Keyring::new(vec![key("k1", 1, 1, None)]).expect("ring");
        let token = ring.mint("default", id, "approve", 1_800_000_000_000);
        assert_eq!(
            token,
            ring.mint("default", id, "approve", 1_800_000_000_000)
        );
        let other = Keyring::new(vec![key("k1", 2, 1, None)]).expect("ring");
        assert_ne!(
            token,
            other.mint("default", id, "approve", 1_800_000_000_000)
        );
    }

    #[test]
    fn forged_and_tampered_tokens_are_refused() {
        let ring = Keyring::new(vec![key("k1", 7, 1, None)]).expect("ring");
        let token = ring.mint("ns", ExecutionId::new(), "approve", 5_000);
        let (body, mac) = token.split_once('.').expect("two parts");
        let other_body = URL_SAFE_NO_PAD.encode(
            String::from_utf8(URL_SAFE_NO_PAD.decode(body).expect("b64"))
                .expect("utf8")
                .replace("approve", "reject"),
        );
        for bad in [
            format!("{other_body}.{mac}"),
            format!("{body}.{}", URL_SAFE_NO_PAD.encode([0u8; 32])),
            "garbage".to_owned(),
            body.to_string(),
        ] {
            let err = ring.verify(&bad).expect_err("refused");
            assert_eq!(err.field(), Some("token"));
        }
    }

    #[test]
    fn a_rotated_key_verifies_until_its_grace_ends() {
        let old = Keyring::new(vec![key("k1", 1, 1, None)]).expect("ring");
        let token = old.mint("ns", ExecutionId::new(), "w", 10_000);
        let rotated =
            Keyring::new(vec![key("k1", 1, 1, Some(5_000)), key("k2", 2, 2, None)]).expect("ring");
        assert_eq!(rotated.signing().kid, "k2");
        assert_eq!(rotated.next_kid(), "k3");
        let claims = rotated.verify(&token).expect("old kid verifies");
        assert!(rotated.check_time(&claims, 4_999).is_ok());
        assert!(rotated.check_time(&claims, 5_000).is_err());
    }

    #[test]
    fn secrets_never_print() {
        let secret = WaitpointSecret::random();
        assert!(!format!("{secret:?}").contains(&secret.to_hex()));
        let parsed = WaitpointSecret::from_hex(&secret.to_hex()).expect("round trip");
        assert_eq!(parsed, secret);
        assert!(WaitpointSecret::from_hex("zz").is_err());
    }
}
