//! The engine's services on every backend (the server ones when their URL
//! variable is set): they expire a dead lease, promote the retry once its
//! backoff has passed, fail an execution past its deadline and time out a
//! suspension, with no worker involved. The backend's clock is moved by
//! hand; the services run on short real intervals.

mod support;

use std::sync::Arc;
use std::time::Duration;

use ff_core::execution::AttemptEnd;
use ff_core::suspension::{SuspendRequest, TimeoutPolicy};
use ff_core::{
    ClaimRequest, Clock, EngineBackend, ExecutionId, JsonText, ManualClock, RetryPolicy, State,
    SubmitRequest,
};
use ff_engine::{
    deadline_scanner, lease_expiry, scheduled_promoter, suspension_timeout, Engine, EngineConfig,
};

use support::{for_each_backend, Kind, Store};

for_each_backend!(
    services_expire_leases_promote_retries_and_enforce_deadlines,
    shutdown_returns_promptly_while_services_idle,
);

fn fast_config() -> EngineConfig {
    let interval = Duration::from_millis(5);
    EngineConfig {
        lease_expiry: lease_expiry::Config {
            interval,
            ..Default::default()
        },
        scheduled_promoter: scheduled_promoter::Config {
            interval,
            ..Default::default()
        },
        deadline_scanner: deadline_scanner::Config {
            interval,
            ..Default::default()
        },
        suspension_timeout: suspension_timeout::Config {
            interval,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Waits (in real time, bounded) until execution `id` is in `state`.
async fn wait_for_state(backend: &dyn EngineBackend, id: ExecutionId, state: State) {
    for _ in 0..500 {
        let exec = backend.get_execution(id).await.expect("execution exists");
        if exec.state == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{id} never reached {state}");
}

async fn services_expire_leases_promote_retries_and_enforce_deadlines(kind: Kind) {
    let clock = ManualClock::default();
    let Some(store) = Store::with_clock(kind, Arc::new(clock.clone())) else {
        return;
    };
    let opened = store.open().await;
    let backend = opened.engine();
    let engine = Engine::start(backend.clone(), opened.completions(), fast_config());

    let retry = RetryPolicy {
        max_attempts: 2,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 1_000,
        jitter_percent: 0,
    };
    let leased = backend
        .submit(
            SubmitRequest::new("lane", "kind", JsonText::null())
                .lease_ms(1_000)
                .retry(retry),
        )
        .await
        .expect("submit")
        .id;
    let claimed = backend
        .claim(&ClaimRequest::new(["lane"], "w1"))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);

    // The worker vanishes; once its lease has run out the engine expires it
    // into a retry, and once the backoff has passed, makes it claimable.
    clock.advance(Duration::from_millis(1_500));
    wait_for_state(&*backend, leased, State::Scheduled).await;
    let exec = backend
        .get_execution(leased)
        .await
        .expect("execution exists");
    assert_eq!(exec.attempts[0].end, Some(AttemptEnd::LeaseExpired));
    clock.advance(Duration::from_millis(1_000));
    wait_for_state(&*backend, leased, State::Ready).await;

    let late = clock.now_ms() + 500;
    let doomed = backend
        .submit(SubmitRequest::new("other", "kind", JsonText::null()).deadline(late))
        .await
        .expect("submit")
        .id;
    clock.advance(Duration::from_millis(600));
    wait_for_state(&*backend, doomed, State::Failed).await;

    // A suspension whose timeout passes resumes with a `timeout` signal.
    backend
        .submit(SubmitRequest::new("approvals", "kind", JsonText::null()))
        .await
        .expect("submit");
    let waiting = backend
        .claim(&ClaimRequest::new(["approvals"], "w1"))
        .await
        .expect("claim")
        .remove(0);
    let req = SuspendRequest::on("ask", ["approve"]).timeout(500, TimeoutPolicy::Resume);
    backend
        .suspend(&waiting.handle, &req)
        .await
        .expect("suspend");
    clock.advance(Duration::from_millis(600));
    wait_for_state(&*backend, waiting.handle.execution_id, State::Ready).await;

    let stats = engine.shutdown().await;
    assert!(stats.leases_expired >= 1, "{stats:?}");
    assert!(stats.scheduled_promoted >= 1, "{stats:?}");
    assert!(stats.deadlines_expired >= 1, "{stats:?}");
    assert!(stats.suspensions_timed_out >= 1, "{stats:?}");
    assert_eq!(stats.service_errors, 0, "{stats:?}");
    opened.close().await;
}

async fn shutdown_returns_promptly_while_services_idle(kind: Kind) {
    let Some(store) = Store::with_clock(kind, Arc::new(ManualClock::default())) else {
        return;
    };
    let opened = store.open().await;
    let engine = Engine::start(
        opened.engine(),
        opened.completions(),
        EngineConfig::default(),
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    tokio::time::timeout(Duration::from_secs(2), engine.shutdown())
        .await
        .expect("shutdown does not wait out the services' intervals");
    opened.close().await;
}
