//! The supervisor: starts every background service on the current tokio
//! runtime, restarts one that stops unexpectedly, and stops them all on
//! [`Engine::shutdown`].
//!
//! Services handle their own backend errors (log, back off, go on); the
//! supervisor only guards against the unexpected — a service task that
//! panics or returns before shutdown — by restarting it after a backoff.

use std::future::Future;
use std::sync::Arc;

use ff_core::{CompletionBackend, EngineBackend, FlowOps, MaintenanceOps};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::backoff::ErrorBackoff;
use crate::shutdown::{self, Signal, Trigger};
use crate::stats::{EngineStats, StatsSnapshot};
use crate::{
    completion_listener, deadline_scanner, dependency_reconciler, lease_expiry, outbox_trim,
    scheduled_promoter, suspension_timeout,
};

/// Every service's configuration; `Default` gives production values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineConfig {
    pub lease_expiry: lease_expiry::Config,
    pub scheduled_promoter: scheduled_promoter::Config,
    pub deadline_scanner: deadline_scanner::Config,
    pub suspension_timeout: suspension_timeout::Config,
    pub completion_listener: completion_listener::Config,
    pub dependency_reconciler: dependency_reconciler::Config,
    pub outbox_trim: outbox_trim::Config,
}

/// The running engine: a handle on its services.
#[derive(Debug)]
pub struct Engine {
    trigger: Trigger,
    stats: Arc<EngineStats>,
    services: Vec<(&'static str, JoinHandle<()>)>,
}

impl Engine {
    /// Spawns every service on the current tokio runtime (panics outside
    /// one, like `tokio::spawn`). Returns at once.
    pub fn start(
        engine: Arc<dyn EngineBackend>,
        completions: Arc<dyn CompletionBackend>,
        config: EngineConfig,
    ) -> Engine {
        let (trigger, _) = shutdown::channel();
        let stats = Arc::new(EngineStats::default());
        let flows: Arc<dyn FlowOps> = engine.clone();
        let maintenance: Arc<dyn MaintenanceOps> = engine;
        let mut services = Vec::new();
        let mut spawn =
            |name: &'static str, make: Box<dyn Fn(Signal) -> ServiceFuture + Send + Sync>| {
                services.push((name, tokio::spawn(supervise(name, trigger.signal(), make))));
            };

        let (ops, st) = (maintenance.clone(), stats.clone());
        spawn(
            "lease_expiry",
            Box::new(move |signal| {
                Box::pin(lease_expiry::run(
                    ops.clone(),
                    config.lease_expiry,
                    st.clone(),
                    signal,
                ))
            }),
        );
        let (ops, st) = (maintenance.clone(), stats.clone());
        spawn(
            "scheduled_promoter",
            Box::new(move |signal| {
                Box::pin(scheduled_promoter::run(
                    ops.clone(),
                    config.scheduled_promoter,
                    st.clone(),
                    signal,
                ))
            }),
        );
        let (ops, st) = (maintenance.clone(), stats.clone());
        spawn(
            "deadline_scanner",
            Box::new(move |signal| {
                Box::pin(deadline_scanner::run(
                    ops.clone(),
                    config.deadline_scanner,
                    st.clone(),
                    signal,
                ))
            }),
        );
        let (ops, st) = (maintenance.clone(), stats.clone());
        spawn(
            "suspension_timeout",
            Box::new(move |signal| {
                Box::pin(suspension_timeout::run(
                    ops.clone(),
                    config.suspension_timeout,
                    st.clone(),
                    signal,
                ))
            }),
        );
        let (ops, st) = (maintenance.clone(), stats.clone());
        spawn(
            "outbox_trim",
            Box::new(move |signal| {
                Box::pin(outbox_trim::run(
                    ops.clone(),
                    config.outbox_trim,
                    st.clone(),
                    signal,
                ))
            }),
        );
        let (ops, fl, st) = (maintenance, flows.clone(), stats.clone());
        spawn(
            "dependency_reconciler",
            Box::new(move |signal| {
                Box::pin(dependency_reconciler::run(
                    ops.clone(),
                    fl.clone(),
                    config.dependency_reconciler,
                    st.clone(),
                    signal,
                ))
            }),
        );
        let st = stats.clone();
        spawn(
            "completion_listener",
            Box::new(move |signal| {
                Box::pin(completion_listener::run(
                    completions.clone(),
                    flows.clone(),
                    config.completion_listener,
                    st.clone(),
                    signal,
                ))
            }),
        );
        tracing::debug!(services = services.len(), "engine started");
        Engine {
            trigger,
            stats,
            services,
        }
    }

    /// A shared handle on the live counters, for exporters.
    pub fn stats_handle(&self) -> Arc<EngineStats> {
        Arc::clone(&self.stats)
    }

    /// The counters so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Signals every service and waits for each to finish its current step.
    /// Returns the final counters.
    pub async fn shutdown(self) -> StatsSnapshot {
        self.trigger.trigger();
        for (name, handle) in self.services {
            if let Err(error) = handle.await {
                tracing::error!(service = name, %error, "service supervisor ended abnormally");
            }
        }
        tracing::debug!("engine stopped");
        self.stats.snapshot()
    }
}

type ServiceFuture = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs a service in its own task (so a panic is caught as a `JoinError`)
/// and restarts it after a backoff whenever it ends before shutdown.
async fn supervise(
    name: &'static str,
    mut shutdown: Signal,
    make: Box<dyn Fn(Signal) -> ServiceFuture + Send + Sync>,
) {
    let mut backoff = ErrorBackoff::default();
    loop {
        let span = tracing::info_span!("service", name);
        let ended = tokio::spawn(make(shutdown.clone()).instrument(span)).await;
        if shutdown.is_triggered() {
            return;
        }
        match ended {
            Err(error) if error.is_panic() => {
                tracing::error!(service = name, "service panicked; restarting")
            }
            _ => tracing::error!(
                service = name,
                "service stopped before shutdown; restarting"
            ),
        }
        if !shutdown.sleep(backoff.next_delay()).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_service_that_panics_is_restarted_until_shutdown() {
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        let make: Box<dyn Fn(Signal) -> ServiceFuture + Send + Sync> =
            Box::new(move |mut signal: Signal| {
                let run = counted.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    if run == 0 {
                        panic!("first run fails");
                    }
                    signal.wait().await;
                })
            });
        let (trigger, signal) = shutdown::channel();
        let task = tokio::spawn(supervise("flaky", signal, make));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            starts.load(Ordering::SeqCst),
            2,
            "restarted once after the backoff"
        );
        trigger.trigger();
        task.await.expect("supervisor ends cleanly");
        assert_eq!(starts.load(Ordering::SeqCst), 2);
    }
}
