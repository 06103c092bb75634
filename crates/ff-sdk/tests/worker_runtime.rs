//! The worker runtime on both transports: renewal, cancellation, typed
//! control values, unknown kinds, bounded concurrency and graceful shutdown.
//! Each scenario is an `async fn` taking a [`Harness`]; the macro at the end
//! runs it once embedded and once over HTTP.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ff_core::execution::AttemptEnd;
use ff_sdk::{
    Fail, HandlerError, JobContext, Outcome, Release, Retry, SignalRequest, State, StopReason,
    Suspend, Worker, WorkerBuilder,
};
use serde_json::{json, Value};
use tokio::sync::Notify;

use support::{eventually, finished, request, Harness, Transport};

const LANE: &str = "runtime";

fn builder(h: &Harness) -> WorkerBuilder {
    Worker::builder(h.client.clone())
        .lane(LANE)
        .claim_wait(Duration::from_millis(300))
}

/// A handler hands out a waitpoint's token and suspends; a signal with the
/// token brings the same attempt back with the signal; an already signalled
/// waitpoint lets the handler go on under the same lease.
async fn suspend_waits_for_a_signal(h: Harness) {
    let (tokens, mut handed_out) = tokio::sync::mpsc::unbounded_channel::<String>();
    let worker = builder(&h)
        .handler("approve", move |ctx: JobContext| {
            let tokens = tokens.clone();
            async move {
                if let Some(approval) = ctx.signal("approve") {
                    let by: Value = approval.payload.decode().map_err(HandlerError::from)?;
                    return Ok(json!({ "approved_by": by["by"], "attempt": ctx.attempt() }));
                }
                let grant = ctx.waitpoint("approve").await?;
                let _ = tokens.send(grant.token);
                Err(Suspend::on(["approve"]).into())
            }
        })
        .start()
        .expect("start");
    let id = h
        .client
        .submit(request(LANE, "approve", json!({})))
        .await
        .expect("submit")
        .id;
    let token = handed_out.recv().await.expect("a token");
    eventually("the execution suspends", || async {
        h.client.get_execution(id).await.expect("get").state == State::Suspended
    })
    .await;
    let sent = h
        .client
        .signal(
            &token,
            &SignalRequest::new(
                "approved",
                ff_sdk::JsonText::from_value(&json!({"by": "ada"})),
            ),
        )
        .await
        .expect("signal");
    assert!(sent.resumed);
    let end = finished(&h.client, id).await;
    assert_eq!(end.outcome, Outcome::Completed, "{end:?}");
    let result: Value = end.result.expect("result").decode().expect("json");
    assert_eq!(result, json!({"approved_by": "ada", "attempt": 1}));
    let view = h.client.signals(id).await.expect("signals");
    assert_eq!(view.signals.len(), 1);
    let stats = worker.shutdown().await;
    assert_eq!(stats.suspended, 1, "{stats:?}");
}

/// Sets its flag when dropped: tells whether an aborted handler was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A handler that outlives three leases completes on its first attempt.
async fn renews_a_lease_longer_than_it_lasts(h: Harness) {
    let worker = builder(&h)
        .handler("slow", |_ctx: JobContext| async move {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            Ok("done")
        })
        .start()
        .expect("start");
    let id = h
        .client
        .submit(request(LANE, "slow", json!({})).lease_ms(800))
        .await
        .expect("submit")
        .id;
    let end = finished(&h.client, id).await;
    assert_eq!(
        (end.outcome, end.attempt),
        (Outcome::Completed, 1),
        "{end:?}"
    );
    assert_eq!(
        end.decode::<String>().expect("json").as_deref(),
        Some("done")
    );
    worker.shutdown().await;
    h.close().await;
}

/// Cancelling a running execution stops its handler at the next renewal.
async fn cancelling_a_running_execution_stops_its_handler(h: Harness) {
    let started = Arc::new(Notify::new());
    let dropped = Arc::new(AtomicBool::new(false));
    let (s, d) = (started.clone(), dropped.clone());
    let worker = builder(&h)
        .handler("forever", move |_ctx: JobContext| {
            let (started, guard) = (s.clone(), DropFlag(d.clone()));
            async move {
                let _guard = guard;
                started.notify_one();
                tokio::time::sleep(Duration::from_secs(600)).await;
                Ok(())
            }
        })
        .start()
        .expect("start");
    let id = h
        .client
        .submit(request(LANE, "forever", json!({})).lease_ms(600))
        .await
        .expect("submit")
        .id;
    started.notified().await;
    let cancel = h.client.cancel(id).await.expect("cancel");
    assert!(cancel.changed);
    eventually("the handler to be aborted", || async {
        dropped.load(Ordering::SeqCst)
    })
    .await;
    let stats = worker.shutdown().await;
    assert_eq!((stats.abandoned, stats.completed), (1, 0), "{stats:?}");
    let exec = h.client.get_execution(id).await.expect("read");
    assert_eq!(exec.state, State::Cancelled);
    h.close().await;
}

/// With a cancel grace, the handler hears why it must stop.
async fn a_cancelled_handler_hears_why(h: Harness) {
    let heard = Arc::new(std::sync::Mutex::new(None));
    let got = heard.clone();
    let worker = builder(&h)
        .cancel_grace(Duration::from_secs(5))
        .handler("listens", move |ctx: JobContext| {
            let got = got.clone();
            async move {
                let reason = ctx.stopped().await;
                *got.lock().expect("lock") = Some(reason);
                Err::<(), _>(Release.into())
            }
        })
        .start()
        .expect("start");
    let id = h
        .client
        .submit(request(LANE, "listens", json!({})).lease_ms(600))
        .await
        .expect("submit")
        .id;
    eventually("the execution to run", || async {
        h.client.get_execution(id).await.expect("read").state == State::Running
    })
    .await;
    h.client.cancel(id).await.expect("cancel");
    eventually("the handler to hear it", || async {
        heard.lock().expect("lock").is_some()
    })
    .await;
    assert_eq!(
        *heard.lock().expect("lock"),
        Some(StopReason::Cancelled {
            outcome: Outcome::Cancelled
        })
    );
    worker.shutdown().await;
    h.close().await;
}

/// `Fail::permanent` ends at once; `Retry::after` retries; a panic retries;
/// an unknown kind fails for good, naming the kinds the worker knows.
async fn control_values_steer_the_attempt(h: Harness) {
    let worker = builder(&h)
        .concurrency(4)
        .handler("permanent", |_ctx: JobContext| async move {
            Err::<(), HandlerError>(Fail::permanent("bad input").into())
        })
        .handler("retry", |ctx: JobContext| async move {
            if ctx.attempt() < 2 {
                return Err(Retry::after(Duration::from_millis(10))
                    .because("busy")
                    .into());
            }
            Ok(json!(ctx.attempt()))
        })
        .handler("panics", |ctx: JobContext| async move {
            if ctx.attempt() == 1 {
                panic!("boom");
            }
            Ok(json!("survived"))
        })
        .start()
        .expect("start");
    let submit = |kind: &'static str| {
        let client = h.client.clone();
        async move {
            client
                .submit(request(LANE, kind, json!({})))
                .await
                .expect("submit")
                .id
        }
    };
    let permanent = finished(&h.client, submit("permanent").await).await;
    assert_eq!(
        (
            permanent.outcome,
            permanent.attempt,
            permanent.error.as_deref()
        ),
        (Outcome::Failed, 1, Some("bad input"))
    );
    let retry = finished(&h.client, submit("retry").await).await;
    assert_eq!((retry.outcome, retry.attempt), (Outcome::Completed, 2));
    let exec = h.client.get_execution(retry.id).await.expect("read");
    let first = exec.attempts[0].error.as_deref().unwrap_or_default();
    assert!(first.starts_with("busy (retry requested after"), "{first}");
    let panics = finished(&h.client, submit("panics").await).await;
    assert_eq!((panics.outcome, panics.attempt), (Outcome::Completed, 2));
    let exec = h.client.get_execution(panics.id).await.expect("read");
    assert_eq!(
        exec.attempts[0].error.as_deref(),
        Some("the handler panicked: boom")
    );
    let unknown = finished(&h.client, submit("mystery").await).await;
    assert_eq!((unknown.outcome, unknown.attempt), (Outcome::Failed, 1));
    let error = unknown.error.unwrap_or_default();
    assert!(
        error.contains("no handler for kind `mystery`")
            && error.contains("panics, permanent, retry"),
        "{error}"
    );
    worker.shutdown().await;
    h.close().await;
}

/// No more than `concurrency` handlers run at once, and all complete.
async fn concurrency_bounds_running_handlers(h: Harness) {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let worker = builder(&h)
        .concurrency(3)
        .handler("busy", move |_ctx: JobContext| {
            let (running, peak) = (r.clone(), p.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(150)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(Value::Null)
            }
        })
        .start()
        .expect("start");
    let reqs = (0..10)
        .map(|i| request(LANE, "busy", json!({ "i": i })))
        .collect();
    let submitted = h.client.submit_batch(reqs).await.expect("batch");
    for s in &submitted {
        assert_eq!(finished(&h.client, s.id).await.outcome, Outcome::Completed);
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!((1..=3).contains(&peak), "peak {peak}");
    let stats = worker.shutdown().await;
    assert_eq!((stats.claimed, stats.completed), (10, 10), "{stats:?}");
    h.close().await;
}

/// Shutdown asks handlers to stop: a cooperative one releases its lease at
/// once; a stubborn one is aborted when the grace ends and its lease
/// released. Both executions are ready again with the attempt not used up.
async fn shutdown_releases_leases(h: Harness) {
    let dropped = Arc::new(AtomicBool::new(false));
    let d = dropped.clone();
    // Counted inside the handlers: a claim the database shows as running
    // may not have reached its handler yet, and shutdown releases such a
    // claim without running it.
    let started = Arc::new(AtomicUsize::new(0));
    let (s1, s2) = (started.clone(), started.clone());
    let worker = builder(&h)
        .concurrency(2)
        .shutdown_grace(Duration::from_millis(300))
        .handler("cooperative", move |ctx: JobContext| {
            s1.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::select! {
                    reason = ctx.stopped() => {
                        assert_eq!(reason, StopReason::Shutdown);
                        Err::<(), HandlerError>(Release.into())
                    }
                    () = tokio::time::sleep(Duration::from_secs(600)) => Ok(()),
                }
            }
        })
        .handler("stubborn", move |_ctx: JobContext| {
            s2.fetch_add(1, Ordering::SeqCst);
            let guard = DropFlag(d.clone());
            async move {
                let _guard = guard;
                tokio::time::sleep(Duration::from_secs(600)).await;
                Ok(())
            }
        })
        .start()
        .expect("start");
    let mut ids = Vec::new();
    for kind in ["cooperative", "stubborn"] {
        let req = request(LANE, kind, json!({}));
        ids.push(h.client.submit(req).await.expect("submit").id);
    }
    eventually("both handlers to start", || async {
        started.load(Ordering::SeqCst) == 2
    })
    .await;
    let stats = worker.shutdown().await;
    assert_eq!(stats.released, 2, "{stats:?}");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the stubborn handler was aborted"
    );
    for id in ids {
        let exec = h.client.get_execution(id).await.expect("read");
        assert_eq!(exec.state, State::Ready, "{exec:?}");
        assert_eq!(exec.attempts.len(), 1);
        assert_eq!(exec.attempts[0].end, Some(AttemptEnd::Released));
        assert!(exec.reuse_attempt, "the next claim keeps attempt 1");
    }
    h.close().await;
}

/// Reads, steering and errors answer the same on both transports.
async fn client_calls_and_errors(h: Harness) {
    let client = &h.client;
    let first = client
        .submit(request(LANE, "noop", json!({"n": 1})).idempotency_key("k1"))
        .await
        .expect("submit");
    let again = client
        .submit(request(LANE, "noop", json!({"n": 2})).idempotency_key("k1"))
        .await
        .expect("resubmit");
    assert!(first.created && !again.created && first.id == again.id);

    let page = client
        .list_executions(ff_core::ListFilter {
            lane: Some(LANE.to_owned()),
            state: Some(State::Ready),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
    let counts = client.counts().await.expect("counts");
    assert_eq!(counts.len(), 1);
    assert_eq!((counts[0].state, counts[0].count), (State::Ready, 1));

    let err = client.requeue(first.id).await.expect_err("not failed");
    assert_eq!(err.kind(), ff_core::ErrorKind::Conflict, "{err}");
    let missing = ff_core::ExecutionId::new();
    let err = client.get_execution(missing).await.expect_err("unknown");
    assert!(
        matches!(
            &err,
            ff_core::EngineError::NotFound {
                entity: "execution",
                ..
            }
        ),
        "{err:?}"
    );
    let err = client
        .submit(request("", "noop", json!({})))
        .await
        .expect_err("empty lane");
    assert_eq!(err.field(), Some("lane"), "{err:?}");
    let err = client
        .wait_for_result(missing, Duration::from_millis(100))
        .await
        .expect_err("unknown");
    assert_eq!(err.kind(), ff_core::ErrorKind::NotFound);
    let other = client.with_namespace("elsewhere");
    let err = other.get_execution(first.id).await.expect_err("namespaced");
    assert_eq!(err.kind(), ff_core::ErrorKind::NotFound);
    assert_eq!(
        client
            .wait_for_result(first.id, Duration::from_millis(100))
            .await
            .expect("wait"),
        None,
        "nothing runs it"
    );

    // Cancel, then requeue is refused only for non-failed executions: fail
    // one for good and requeue it.
    let worker = builder(&h)
        .handler("noop", |ctx: JobContext| async move {
            if ctx.attempt() == 1 {
                return Err::<Value, HandlerError>(Fail::permanent("first").into());
            }
            Ok(json!("second"))
        })
        .start()
        .expect("start");
    let failed = finished(client, first.id).await;
    assert_eq!(failed.outcome, Outcome::Failed);
    client.requeue(first.id).await.expect("requeue");
    let end = finished(client, first.id).await;
    assert_eq!((end.outcome, end.attempt), (Outcome::Completed, 2));
    worker.shutdown().await;
    let cancel = client
        .cancel(first.id)
        .await
        .expect("cancel a terminal one");
    assert!(!cancel.changed && cancel.outcome == Outcome::Completed);
    h.close().await;
}

macro_rules! on_both_transports {
    ($($scenario:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let h = super::Harness::start(super::Transport::Embedded, stringify!($scenario)).await;
                    super::$scenario(h).await;
                }
            )*
        }
        mod http {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let h = super::Harness::start(super::Transport::Http, stringify!($scenario)).await;
                    super::$scenario(h).await;
                }
            )*
        }
    };
}

on_both_transports!(
    renews_a_lease_longer_than_it_lasts,
    cancelling_a_running_execution_stops_its_handler,
    a_cancelled_handler_hears_why,
    control_values_steer_the_attempt,
    concurrency_bounds_running_handlers,
    shutdown_releases_leases,
    client_calls_and_errors,
    suspend_waits_for_a_signal,
);
