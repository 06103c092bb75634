//! Fault injection as wrappers, never as test-only code inside a backend:
//! [`DroppingCompletions`] loses chosen completion events on their way to a
//! subscriber; [`CrashingBackend`] lets `k` writes through and then fails
//! every call, as if the process had died right after the k-th commit.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use ff_core::ops::{BackendWrapper, Call};
use ff_core::{CompletionBackend, CompletionPayload, CompletionStream, EngineBackend, EngineError};
use futures::StreamExt;

type DropRule = dyn Fn(&CompletionPayload) -> bool + Send + Sync;

/// A [`CompletionBackend`] that silently drops every event `drop_if` selects.
pub struct DroppingCompletions {
    inner: Arc<dyn CompletionBackend>,
    drop_if: Arc<DropRule>,
    dropped: Arc<AtomicU64>,
}

impl DroppingCompletions {
    pub fn new(
        inner: Arc<dyn CompletionBackend>,
        drop_if: impl Fn(&CompletionPayload) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner,
            drop_if: Arc::new(drop_if),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Drops every event.
    pub fn all(inner: Arc<dyn CompletionBackend>) -> Self {
        Self::new(inner, |_| true)
    }

    /// How many events were dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for DroppingCompletions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DroppingCompletions")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl CompletionBackend for DroppingCompletions {
    async fn subscribe_completions(&self) -> Result<CompletionStream, EngineError> {
        let stream = self.inner.subscribe_completions().await?;
        let drop_if = Arc::clone(&self.drop_if);
        let dropped = Arc::clone(&self.dropped);
        let filtered = stream.filter(move |payload| {
            let keep = !drop_if(payload);
            if !keep {
                dropped.fetch_add(1, Ordering::SeqCst);
            }
            futures::future::ready(keep)
        });
        Ok(Box::pin(filtered.boxed()))
    }
}

/// An [`EngineBackend`] that lets `k` writes through, then answers every
/// call — reads included — with `Unavailable`, like a process that died
/// right after its k-th commit. Restart by opening the real backend again.
pub struct CrashingBackend {
    inner: Arc<dyn EngineBackend>,
    writes_left: AtomicU64,
}

impl CrashingBackend {
    pub fn new(inner: Arc<dyn EngineBackend>, crash_after_writes: u64) -> Self {
        Self {
            inner,
            writes_left: AtomicU64::new(crash_after_writes),
        }
    }

    /// Whether the crash has happened.
    pub fn crashed(&self) -> bool {
        self.writes_left.load(Ordering::SeqCst) == 0
    }

    fn read(&self) -> Result<&dyn EngineBackend, EngineError> {
        if self.crashed() {
            return Err(crashed());
        }
        Ok(&*self.inner)
    }

    fn write(&self) -> Result<&dyn EngineBackend, EngineError> {
        self.writes_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .map_err(|_| crashed())?;
        Ok(&*self.inner)
    }
}

fn crashed() -> EngineError {
    EngineError::Unavailable {
        message: "injected crash".to_owned(),
    }
}

impl fmt::Debug for CrashingBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrashingBackend")
            .field("writes_left", &self.writes_left)
            .finish_non_exhaustive()
    }
}

impl BackendWrapper for CrashingBackend {
    fn target(&self, call: Call) -> Result<&dyn EngineBackend, EngineError> {
        if call.writes {
            self.write()
        } else {
            self.read()
        }
    }
}

ff_core::wrap_backend!(CrashingBackend);
