//! Keeps the queue's indexes free of dead entries.
//!
//! Every transition writes a new row version and leaves the old one's entry
//! in the partial indexes a claim or scan walks from the front (claimable
//! executions in claim order, running ones by lease, undispatched outbox
//! entries). Until a vacuum removes them, every claim steps over the dead
//! entries of all the work done before it, and claim latency grows with the
//! history. Autovacuum visits a database at most once a `naptime` (a minute
//! by default) and skips index cleanup when few pages changed, so under
//! load the backend vacuums its two hot tables itself, after enough churn,
//! with `SKIP_LOCKED` so processes sharing the schema never queue behind
//! each other's vacuum.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::{Duration, Instant};

use crate::Inner;

/// How often the churn counter is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Rows written since the last vacuum that make the next one worth it.
const CHURN_THRESHOLD: u64 = 20_000;

/// Vacuums `executions` and `outbox` whenever enough rows changed, until
/// the backend is dropped.
pub(crate) async fn run(backend: Weak<Inner>) {
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let Some(inner) = backend.upgrade() else {
            return;
        };
        let churn = inner.churn.load(Ordering::Relaxed);
        if churn < CHURN_THRESHOLD {
            continue;
        }
        inner.churn.fetch_sub(churn, Ordering::Relaxed);
        let started = Instant::now();
        let vacuumed = sqlx::query("VACUUM (INDEX_CLEANUP ON, SKIP_LOCKED) executions, outbox")
            .execute(&inner.pool)
            .await;
        match vacuumed {
            Ok(_) => tracing::debug!(
                took_ms = started.elapsed().as_millis() as u64,
                schema = inner.schema,
                "vacuumed the queue tables"
            ),
            Err(error) if is_permission_denied(&error) => {
                tracing::warn!(
                    schema = inner.schema,
                    "the database role may not VACUUM these tables; leaving them to autovacuum"
                );
                return;
            }
            Err(error) => tracing::warn!(%error, schema = inner.schema, "vacuum failed"),
        }
    }
}

/// VACUUM needs the table's owner (or a superuser).
fn is_permission_denied(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "42501")
}
