//! Following the demo lane until none of its executions is left to run,
//! with a progress bar.
//!
//! Counting the lane in the database scans it, which costs real CPU on a
//! large lane, so progress comes from the workers' own tally and the
//! database is asked only to confirm the end (and, every few seconds, to catch
//! what no worker here saw, such as a lease expiring on a last attempt).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Context;
use ff_core::EngineBackend;
use ff_engine::shutdown::Signal;
use indicatif::{ProgressBar, ProgressStyle};

use super::worker::WorkerTally;
use super::LANE;

/// How often the in-process tally is checked.
const TICK: Duration = Duration::from_millis(10);
/// Database confirmations while the tally says the lane is done.
const CONFIRM_EVERY: Duration = Duration::from_millis(250);
/// Database reads while it says work is left: rare, because each one scans
/// the lane on a core the writer needs, and it only catches what no worker
/// here reports (an execution the engine fails on its last attempt).
const RECOUNT_EVERY: Duration = Duration::from_secs(5);

/// Terminal and unfinished executions in the demo lane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneCounts {
    pub terminal: u64,
    pub unfinished: u64,
}

/// Reads the lane's counts by state.
pub async fn lane_counts(backend: &dyn EngineBackend) -> anyhow::Result<LaneCounts> {
    let counts = backend
        .count_by_lane_and_state(ff_core::execution::DEFAULT_NAMESPACE)
        .await
        .context("counting executions")?;
    Ok(counts
        .iter()
        .filter(|c| c.lane == LANE)
        .fold(LaneCounts::default(), |mut acc, c| {
            if c.state.is_terminal() {
                acc.terminal += c.count;
            } else {
                acc.unfinished += c.count;
            }
            acc
        }))
}

/// A bar of `len` executions, hidden when stderr is not a terminal or `quiet`.
pub fn bar(len: u64, quiet: bool) -> anyhow::Result<ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return Ok(ProgressBar::hidden());
    }
    let style = ProgressStyle::with_template(
        "{spinner} {elapsed_precise} [{bar:40.cyan/blue}] {human_pos}/{human_len} {per_sec:>12} {msg}",
    )
    .context("progress bar template")?
    .progress_chars("=> ");
    let bar = ProgressBar::new(len).with_style(style);
    bar.enable_steady_tick(Duration::from_millis(100));
    Ok(bar)
}

/// Keeps `bar` at the tallied terminal count; runs until dropped.
pub async fn follow(
    bar: &ProgressBar,
    before: LaneCounts,
    tally: &WorkerTally,
) -> std::convert::Infallible {
    loop {
        bar.set_position(before.terminal + tally.terminal());
        tokio::time::sleep(TICK * 10).await;
    }
}

/// Waits until the lane has nothing left to run; `None` when interrupted.
/// `lane_total` is how many executions the lane holds after submission.
pub async fn wait_until_done(
    backend: &dyn EngineBackend,
    bar: &ProgressBar,
    before: LaneCounts,
    lane_total: u64,
    tally: &WorkerTally,
    interrupt: &mut Signal,
) -> anyhow::Result<Option<LaneCounts>> {
    let mut last_read: Option<Instant> = None;
    loop {
        let estimate = before.terminal + tally.terminal();
        bar.set_position(estimate);
        let due = if estimate >= lane_total {
            CONFIRM_EVERY
        } else {
            RECOUNT_EVERY
        };
        if last_read.is_none_or(|at| at.elapsed() >= due) {
            let counts = lane_counts(backend).await?;
            if counts.unfinished == 0 {
                bar.set_position(counts.terminal);
                return Ok(Some(counts));
            }
            last_read = Some(Instant::now());
        }
        if !interrupt.sleep(TICK).await {
            return Ok(None);
        }
    }
}
