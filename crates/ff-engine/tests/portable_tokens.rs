//! A waitpoint token is the same bytes on every backend: minted on SQLite,
//! the others mint the same string for the same inputs and secret, and a
//! token another backend handed out is the one SQLite mints for it.

mod support;

use ff_core::suspension::{SignalRequest, WaitpointGrant, WaitpointRequest, WaitpointSecret};
use ff_core::{ClaimRequest, EngineBackend, JsonText, SubmitRequest};

use support::{for_each_backend, Kind, Store};

for_each_backend!(a_token_minted_on_sqlite_is_the_same_here);

const SECRET: [u8; 32] = [0x5a; 32];

async fn adopt(backend: &dyn EngineBackend) {
    backend
        .adopt_waitpoint_secret(WaitpointSecret::from_bytes(SECRET), 600_000)
        .await
        .expect("adopt the secret");
}

/// Submits, claims and creates waitpoint `approve`: the execution's id and
/// its grant.
async fn handed_out(backend: &dyn EngineBackend) -> (ff_core::ExecutionId, WaitpointGrant) {
    backend
        .submit(SubmitRequest::new("gate", "approve", JsonText::null()))
        .await
        .expect("submit");
    let claimed = backend
        .claim(&ClaimRequest::new(["gate"], "w"))
        .await
        .expect("claim")
        .pop()
        .expect("one claimed");
    let grant = backend
        .create_waitpoint(&claimed.handle, &WaitpointRequest::new("approve"))
        .await
        .expect("waitpoint");
    (claimed.handle.execution_id, grant)
}

async fn a_token_minted_on_sqlite_is_the_same_here(kind: Kind) {
    let (Some(sqlite), Some(other)) = (Store::new(Kind::Sqlite), Store::new(kind)) else {
        return;
    };
    let (sqlite, other) = (sqlite.open().await, other.open().await);
    let (on_sqlite, here) = (sqlite.engine(), other.engine());
    adopt(&*on_sqlite).await;
    adopt(&*here).await;

    let (id, grant) = handed_out(&*on_sqlite).await;
    let minted_here = here
        .waitpoint_token("default", id, "approve", grant.expires_at)
        .await
        .expect("mint");
    assert_eq!(
        minted_here, grant.token,
        "the same bytes for the same inputs"
    );

    let (id, grant) = handed_out(&*here).await;
    let minted_on_sqlite = on_sqlite
        .waitpoint_token("default", id, "approve", grant.expires_at)
        .await
        .expect("mint");
    assert_eq!(minted_on_sqlite, grant.token);
    let sent = here
        .signal_by_token(
            &minted_on_sqlite,
            &SignalRequest::new("ok", JsonText::null()),
        )
        .await
        .expect("the SQLite-minted token verifies here");
    assert!(!sent.duplicate);

    sqlite.close().await;
    other.close().await;
}
