//! `soak`: whether claiming slows down as finished executions pile up.
//! Executions are processed in waves (submit a wave, drain it); every
//! non-empty claim's latency (call → answer) is recorded in its wave's
//! histogram, and the first wave is compared with the last. Claims here take
//! small batches (`--soak-claim-batch`) so each wave has many samples.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::{submit_all, warm_up, Measured, Sizes, STALL};
use crate::ceiling::CeilingKind::Batched;
use crate::harness::Bed;
use crate::stats::{per_sec, Dist, Latencies};
use crate::worker::{ClaimObserver, Pool};

pub async fn run(bed: &Bed, sizes: &Sizes) -> anyhow::Result<Measured> {
    warm_up(bed, sizes).await?;
    let waves = sizes.waves.max(1) as usize;
    let histograms = (0..waves)
        .map(|_| Latencies::new())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let histograms = Arc::new(Mutex::new(histograms));
    let current = Arc::new(AtomicUsize::new(0));
    let (record, wave) = (histograms.clone(), current.clone());
    let observer: ClaimObserver = Arc::new(move |_jobs, called, answered| {
        let mut histograms = record.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = histograms.get_mut(wave.load(Ordering::Relaxed)) {
            h.record(answered.saturating_duration_since(called));
        }
    });
    let pool = Pool::start(
        bed.backend.clone(),
        &bed.lane,
        sizes.workers,
        sizes.soak_claim_batch,
        Some(observer),
    );

    let mut rates = Vec::with_capacity(waves);
    let mut result = Ok(());
    for w in 0..waves {
        current.store(w, Ordering::Relaxed);
        let size = wave_size(sizes.executions, waves, w);
        let target = pool.tally.completed() + size;
        let started = Instant::now();
        result = match submit_all(&*bed.backend, &bed.lane, size).await {
            Ok(()) => pool.tally.wait_for(target, STALL).await,
            Err(error) => Err(error),
        };
        if result.is_err() {
            break;
        }
        rates.push(per_sec(size, started.elapsed()));
    }
    pool.stop().await;
    result?;

    let histograms =
        std::mem::take(&mut *histograms.lock().unwrap_or_else(PoisonError::into_inner));
    let (Some(first), Some(last)) = (histograms.first(), histograms.last()) else {
        anyhow::bail!("no wave ran");
    };
    let (first, last) = (Dist::Hdr(first.clone()), Dist::Hdr(last.clone()));
    let mut measured = Measured::default();
    let first_rate = rates.first().copied().unwrap_or_default();
    let last_rate = rates.last().copied().unwrap_or_default();
    measured.figure(
        "first_wave_jobs_per_sec",
        "jobs/s",
        first_rate,
        Some(Batched),
    );
    measured.figure("last_wave_jobs_per_sec", "jobs/s", last_rate, Some(Batched));
    for (name, q) in [
        ("claim_p50_last_over_first", 0.5),
        ("claim_p99_last_over_first", 0.99),
    ] {
        if let (Some(a), Some(b)) = (first.quantile_ms(q), last.quantile_ms(q)) {
            measured.figure(name, "×", b / a.max(1e-3), None);
        }
    }
    measured.dist("claim_first_wave", "claim call → answer, first wave", first);
    measured.dist("claim_last_wave", "claim call → answer, last wave", last);
    Ok(measured)
}

/// Wave `w`'s share of `total` (the remainder goes to the first waves).
fn wave_size(total: u64, waves: usize, w: usize) -> u64 {
    let waves = waves as u64;
    total / waves + u64::from((w as u64) < total % waves)
}

#[cfg(test)]
mod tests {
    use super::wave_size;

    #[test]
    fn waves_share_the_total() {
        assert_eq!((0..3).map(|w| wave_size(10, 3, w)).sum::<u64>(), 10);
        assert_eq!(wave_size(10, 3, 0), 4);
        assert_eq!(wave_size(10, 3, 2), 3);
    }
}
