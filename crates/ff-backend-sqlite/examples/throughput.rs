//! Rough end-to-end throughput of the SQLite backend: producers submit
//! batches, workers claim up to 100 at a time and complete each job with its
//! own call, all concurrently, at `synchronous=FULL` by default.
//!
//! ```text
//! cargo run --release -p ff-backend-sqlite --example throughput -- [jobs] [workers] [normal]
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ff_backend_sqlite::{SqliteBackend, SqliteConfig, Synchronous};
use ff_core::{ClaimRequest, ExecutionOps, JsonText, LeaseOps, SubmitRequest};
use futures::future::join_all;

const BATCH: usize = 100;
const PRODUCERS: usize = 4;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let jobs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let workers: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(16);
    let synchronous = match args.get(3).map(String::as_str) {
        Some("normal") => Synchronous::Normal,
        _ => Synchronous::Full,
    };
    let dir = ff_testkit::TempDir::new("sqlite-throughput");
    let config = SqliteConfig::new(dir.path().join("ff.db")).synchronous(synchronous);
    let backend = SqliteBackend::open(config).await?;

    let started = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for p in 0..PRODUCERS {
        let backend = backend.clone();
        let share = jobs / PRODUCERS + usize::from(p < jobs % PRODUCERS);
        tasks.push(tokio::spawn(async move {
            let mut left = share;
            while left > 0 {
                let n = left.min(BATCH);
                let batch = (0..n)
                    .map(|i| {
                        SubmitRequest::new(
                            "bench",
                            "noop",
                            JsonText::unchecked(format!("{{\"i\":{i}}}")),
                        )
                    })
                    .collect();
                backend.submit_batch(batch).await.expect("submit");
                left -= n;
            }
        }));
    }
    for w in 0..workers {
        let backend = backend.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let req = ClaimRequest::new(["bench"], format!("w{w}")).max(BATCH as u32);
            while done.load(Ordering::Relaxed) < jobs {
                let claimed = backend
                    .claim_wait(&req, Duration::from_millis(200))
                    .await
                    .expect("claim");
                let completes = claimed
                    .iter()
                    .map(|c| backend.complete(&c.handle, JsonText::unchecked("{\"ok\":true}")));
                for result in join_all(completes).await {
                    result.expect("complete");
                }
                done.fetch_add(claimed.len(), Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed();
    println!(
        "{jobs} jobs, {workers} workers, {synchronous:?}: {:.2} s, {:.0} jobs/s",
        elapsed.as_secs_f64(),
        jobs as f64 / elapsed.as_secs_f64()
    );
    backend.close().await;
    Ok(())
}
