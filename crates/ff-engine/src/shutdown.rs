//! The one-way signal that stops every service loop.
//!
//! A [`Trigger`] and any number of [`Signal`] clones share a `watch` channel.
//! Dropping the trigger counts as triggering it, so an `Engine` that is
//! dropped without `shutdown()` still stops its loops instead of leaking them.

use tokio::sync::watch;

/// Creates a linked trigger and signal.
pub fn channel() -> (Trigger, Signal) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Signal(rx))
}

/// Fires the shutdown signal.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

impl Trigger {
    /// Tells every linked [`Signal`] to stop. Idempotent.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// A new signal linked to this trigger.
    pub fn signal(&self) -> Signal {
        Signal(self.0.subscribe())
    }
}

/// Observes the shutdown signal; cheap to clone.
#[derive(Debug, Clone)]
pub struct Signal(watch::Receiver<bool>);

impl Signal {
    /// Whether shutdown has been requested (or the trigger is gone).
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Resolves once shutdown is requested (or the trigger is gone).
    pub async fn wait(&mut self) {
        // `wait_for` errs only when the trigger was dropped, which also means stop.
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `duration`; returns false when shutdown cut the sleep short.
    pub async fn sleep(&mut self, duration: std::time::Duration) -> bool {
        tokio::select! {
            _ = self.wait() => false,
            _ = tokio::time::sleep(duration) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_and_drop_both_stop() {
        let (trigger, mut signal) = channel();
        assert!(!signal.is_triggered());
        trigger.trigger();
        signal.wait().await;
        assert!(signal.is_triggered());

        let (trigger, mut signal) = channel();
        drop(trigger);
        signal.wait().await;
        assert!(signal.is_triggered());
    }
}
