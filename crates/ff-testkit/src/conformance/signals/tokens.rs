//! Waitpoint tokens: forged, expired, retargeted and rotated tokens, and
//! the same bytes on every backend for the same secret and inputs.

use ff_core::suspension::{Keyring, WaitpointKey, WaitpointRequest, WaitpointSecret};
use ff_core::{ErrorKind, ExecutionId};

use super::support::*;
use crate::conformance::support::*;
use crate::BackendFactory;

pub async fn forged_token_rejected_nothing_stored(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let a = waitpoint(&b, &claimed, "a").await;
    let (body, _) = a.token.split_once('.').expect("token has two parts");
    let forged = format!("{body}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    for bad in [forged.as_str(), "not-a-token", body, ""] {
        expect_invalid(b.engine.signal_by_token(bad, &signal("x")).await, "token");
    }
    // A well-formed token signed with another secret.
    let other = Keyring::new(vec![WaitpointKey {
        kid: "k1".to_owned(),
        secret: WaitpointSecret::random(),
        created_at: 0,
        verify_until: None,
    }])
    .expect("keyring");
    let foreign = other.mint("default", id, "a", a.expires_at);
    expect_invalid(
        b.engine.signal_by_token(&foreign, &signal("x")).await,
        "token",
    );
    assert_eq!(signal_count(&b, id).await, 0);
}

pub async fn expired_token_rejected(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let req = WaitpointRequest {
        key: "a".to_owned(),
        ttl_ms: Some(1_000),
    };
    let a = b
        .engine
        .create_waitpoint(&claimed.handle, &req)
        .await
        .expect("create waitpoint");
    assert_eq!(a.expires_at, b.clock.now_ms() + 1_000);
    b.clock.advance(ms(1_000));
    expect_invalid(
        b.engine.signal_by_token(&a.token, &signal("x")).await,
        "token",
    );
    expect_err(
        b.engine.signal("default", id, "a", &signal("x")).await,
        ErrorKind::Conflict,
    );
    assert_eq!(signal_count(&b, id).await, 0);
}

pub async fn rotated_kid_still_verifies_in_grace(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let old_a = waitpoint(&b, &claimed, "a").await;
    let old_b = waitpoint(&b, &claimed, "b").await;
    let kid = b
        .engine
        .rotate_waitpoint_key(None, 300_000)
        .await
        .expect("rotate");
    assert_eq!(kid, "k2");
    let new_c = waitpoint(&b, &claimed, "c").await;
    assert_ne!(kid_of(&new_c.token), kid_of(&old_a.token));
    assert_eq!(kid_of(&new_c.token), "k2");
    send(&b, &old_a, "in-grace").await;
    send(&b, &new_c, "new-key").await;
    b.clock.advance(ms(300_000));
    expect_invalid(
        b.engine.signal_by_token(&old_b.token, &signal("x")).await,
        "token",
    );
    send(&b, &new_c, "still-good").await;
    expect_invalid(b.engine.rotate_waitpoint_key(None, 1_000).await, "grace_ms");
}

fn kid_of(token: &str) -> String {
    Keyring::kid_of(token).expect("a token names its key id")
}

pub async fn token_for_other_waitpoint_rejected(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let a = waitpoint(&b, &claimed, "a").await;
    // Another waitpoint's name in the message breaks the signature.
    let tampered = retarget(&a.token, "|a|", "|b|");
    waitpoint(&b, &claimed, "b").await;
    expect_invalid(
        b.engine.signal_by_token(&tampered, &signal("x")).await,
        "token",
    );
    // A genuine token for a waitpoint this execution never created.
    let stray = b
        .engine
        .waitpoint_token("default", id, "zzz", a.expires_at)
        .await
        .expect("mint");
    expect_err(
        b.engine.signal_by_token(&stray, &signal("x")).await,
        ErrorKind::NotFound,
    );
    assert_eq!(signal_count(&b, id).await, 0);
}

fn retarget(token: &str, from: &str, to: &str) -> String {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (body, mac) = token.split_once('.').expect("two parts");
    let text = String::from_utf8(engine.decode(body).expect("b64")).expect("utf-8");
    format!("{}.{mac}", engine.encode(text.replace(from, to)))
}

pub async fn token_is_the_same_on_every_backend(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let secret = WaitpointSecret::from_bytes([42; 32]);
    let kid = b
        .engine
        .rotate_waitpoint_key(Some(secret.clone()), 600_000)
        .await
        .expect("rotate");
    let claimed = running(&b, "a").await;
    let id = claimed.handle.execution_id;
    let grant = waitpoint(&b, &claimed, "approve").await;
    let reference = Keyring::new(vec![WaitpointKey {
        kid,
        secret,
        created_at: 0,
        verify_until: None,
    }])
    .expect("keyring");
    assert_eq!(
        grant.token,
        reference.mint("default", id, "approve", grant.expires_at)
    );
    let fixed: ExecutionId = "0190f3a0-0000-7000-8000-000000000001".parse().expect("id");
    let minted = b
        .engine
        .waitpoint_token("default", fixed, "approve", 1_800_000_000_000)
        .await
        .expect("mint");
    assert_eq!(
        minted,
        reference.mint("default", fixed, "approve", 1_800_000_000_000)
    );
}

pub async fn adopting_a_secret_is_idempotent(f: &dyn BackendFactory) {
    let b = f.open_default().await;
    let secret = WaitpointSecret::from_bytes([7; 32]);
    let first = b
        .engine
        .adopt_waitpoint_secret(secret.clone(), 600_000)
        .await
        .expect("adopt");
    assert_eq!(first.as_deref(), Some("k2"));
    let again = b
        .engine
        .adopt_waitpoint_secret(secret.clone(), 600_000)
        .await
        .expect("adopt again");
    assert_eq!(again, None, "already the signing key: nothing rotates");
    let id = ExecutionId::new();
    let reference = Keyring::new(vec![WaitpointKey {
        kid: "k2".to_owned(),
        secret,
        created_at: 0,
        verify_until: None,
    }])
    .expect("keyring");
    let minted = b
        .engine
        .waitpoint_token("default", id, "w", 1_800_000_000_000)
        .await
        .expect("mint");
    assert_eq!(
        minted,
        reference.mint("default", id, "w", 1_800_000_000_000)
    );
}
