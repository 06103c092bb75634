//! [`ScratchSchema`]: a schema of its own for a test or a benchmark run,
//! dropped when the guard is.

use crate::EngineError;

/// A fresh schema name on the server at `url`; dropping the guard drops the
/// schema and everything in it, however the test ends.
#[derive(Debug)]
pub struct ScratchSchema {
    url: String,
    name: String,
}

impl ScratchSchema {
    /// A new, unique `ff_test_...` name (the schema itself is created by
    /// the first backend that connects to it).
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            name: format!("ff_test_{}", uuid::Uuid::now_v7().simple()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop may run inside a runtime, which cannot block on a future: a
        // thread with its own runtime does the work.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(EngineError::backend)?;
            rt.block_on(async {
                let pool = crate::pool(&url, "public", 1).await?;
                let dropped = crate::drop_schema(&pool, &name).await;
                pool.close().await;
                dropped
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop scratch schema {}: {dropped:?}", self.name);
        }
    }
}
