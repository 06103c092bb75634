//! `suspend`: how long a suspended execution takes to come back to a
//! worker once an outside party signals it. One execution at a time: a
//! worker claims it and suspends on a waitpoint (its lease released); a
//! second claimer waits in `claim_wait` on the lane; the signal is sent
//! with the waitpoint token, the way an HTTP caller's lands
//! (`signal_by_token`); the resume wakes the waiting claim by the
//! backend's own push, never a poll.
//!
//! One sample is the signal call's start → the waiting claim returning
//! the resumed execution, on this process's monotonic clock.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ff_core::suspension::{SignalRequest, SuspendRequest, SuspendResponse};
use ff_core::{ClaimRequest, EngineBackend, JsonText};

use super::{noop, Measured, Sizes};
use crate::harness::Bed;
use crate::stats::{per_sec, Dist, Latencies};

/// Rounds before measuring, results discarded.
const WARM_UP_ROUNDS: u64 = 20;
/// The longest one resumed claim may take before the run fails.
const CLAIM_WAIT: Duration = Duration::from_secs(10);

pub async fn run(bed: &Bed, sizes: &Sizes) -> anyhow::Result<Measured> {
    let backend = &*bed.backend;
    for i in 0..WARM_UP_ROUNDS {
        round(backend, &bed.lane, i).await.context("warming up")?;
    }
    let mut resume = Latencies::new()?;
    let mut signal_call = Latencies::new()?;
    let started = Instant::now();
    for i in 0..sizes.suspensions {
        let (to_claim, call) = round(backend, &bed.lane, WARM_UP_ROUNDS + i).await?;
        resume.record(to_claim);
        signal_call.record(call);
    }
    let mut measured = Measured::default();
    measured.figure(
        "suspend_cycles_per_sec",
        "cycles/s",
        per_sec(sizes.suspensions, started.elapsed()),
        None,
    );
    measured.dist(
        "signal_to_resumed_claim",
        "signal sent → the waiting claim returned the resumed execution",
        Dist::Hdr(resume),
    );
    measured.dist(
        "signal_call",
        "signal_by_token call, deliver + evaluate + resume in one step",
        Dist::Hdr(signal_call),
    );
    Ok(measured)
}

/// Submit, claim, suspend, signal, resumed claim, complete: the time from
/// the signal to the resumed claim, and the signal call's own.
async fn round(
    backend: &dyn EngineBackend,
    lane: &str,
    i: u64,
) -> anyhow::Result<(Duration, Duration)> {
    let req = ClaimRequest::new([lane], "bench-suspend");
    backend.submit(noop(lane, i)).await.context("submit")?;
    let claimed = backend
        .claim_wait(&req, CLAIM_WAIT)
        .await?
        .pop()
        .context("the submitted execution was not claimed")?;
    let answer = backend
        .suspend(&claimed.handle, &SuspendRequest::on("wait", ["go"]))
        .await
        .context("suspend")?;
    let SuspendResponse::Suspended { waitpoints, .. } = answer else {
        bail!("suspend answered {answer:?}, not suspended");
    };
    let token = waitpoints
        .first()
        .map(|w| w.token.clone())
        .context("suspend handed out no token")?;
    // The claimer is waiting before the signal goes out, as a worker
    // pool's would be.
    let waiting = {
        let req = req.clone();
        let backend: &dyn EngineBackend = backend;
        async move {
            let claimed = backend.claim_wait(&req, CLAIM_WAIT).await;
            (claimed, Instant::now())
        }
    };
    let signal = SignalRequest::new("go", JsonText::null()).source("bench");
    let ((resumed, claimed_at), (answer, sent_at, answered_at)) = tokio::join!(waiting, async {
        // Let the claim reach its wait first.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let sent_at = Instant::now();
        let answer = backend.signal_by_token(&token, &signal).await;
        (answer, sent_at, Instant::now())
    });
    let answer = answer.context("signal")?;
    if !answer.resumed {
        bail!("the signal did not resume the execution");
    }
    let resumed = resumed?
        .pop()
        .context("the resumed execution was not claimed in time")?;
    let to_claim = claimed_at.saturating_duration_since(sent_at);
    let call = answered_at.saturating_duration_since(sent_at);
    if resumed.handle.execution_id != claimed.handle.execution_id || resumed.signals.is_empty() {
        bail!("the resumed claim is not the suspended execution with its signal");
    }
    backend
        .complete(&resumed.handle, JsonText::null())
        .await
        .context("complete")?;
    Ok((to_claim, call))
}
