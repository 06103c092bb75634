//! Backoff after a service error: doubles from `min` to `max`, reset by the
//! next success, so a backend outage is not hammered and a recovered backend
//! is served at full speed again.

use std::time::Duration;

/// Exponential delay between retries of a failing service step.
#[derive(Debug, Clone)]
pub struct ErrorBackoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl ErrorBackoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The delay to wait now; the following one is twice as long, capped.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Back to the shortest delay after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

impl Default for ErrorBackoff {
    /// Capped at a second: a backend back from an outage has its
    /// background work (lease expiry, promotion, cascades) resumed within
    /// about a second, and a step a second per service costs it nothing.
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let mut b = ErrorBackoff::new(Duration::from_millis(100), Duration::from_millis(300));
        let got: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [100, 200, 300, 300]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }
}
