//! Ctrl-C and SIGTERM as a graceful shutdown: the first one fires the
//! trigger (stop claiming, finish running handlers, close cleanly); a second
//! one exits at once, for a shutdown that hangs.

use ff_engine::shutdown::Trigger;

/// Fires `trigger` on the first Ctrl-C or SIGTERM.
pub fn spawn_handler(trigger: Trigger) {
    tokio::spawn(async move {
        if wait_for_signal().await.is_err() {
            tracing::warn!("cannot listen for signals; Ctrl-C will kill the process");
            return;
        }
        eprintln!("\nstopping: finishing running handlers (press Ctrl-C again to quit at once)");
        trigger.trigger();
        if wait_for_signal().await.is_ok() {
            eprintln!("quitting without a clean shutdown; leases will expire and the work resumes on the next run");
            std::process::exit(130);
        }
    });
}

#[cfg(unix)]
async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}
