//! [`block_on_own_thread`]: async cleanup from a `Drop`, which may run
//! inside a runtime and so cannot block on it.

use std::future::Future;

use ff_core::EngineError;

/// Runs the future `make` builds to completion on a new thread with a
/// runtime of its own, and answers its result.
pub fn block_on_own_thread<T, F, Fut>(make: F) -> Result<T, EngineError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, EngineError>>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(EngineError::backend)?
            .block_on(make())
    })
    .join()
    .map_err(|_| EngineError::backend("the cleanup thread panicked"))?
}
