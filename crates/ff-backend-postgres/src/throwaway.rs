//! [`ThrowawaySchema`]: a schema of its own for a test or a benchmark run,
//! dropped when the guard is.

/// A fresh schema name on the server at `url`; dropping the guard drops the
/// schema and everything in it, however the test ends.
#[derive(Debug)]
pub struct ThrowawaySchema {
    url: String,
    name: String,
}

impl ThrowawaySchema {
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

impl Drop for ThrowawaySchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = ff_backend_support::block_on_own_thread(move || async move {
            let pool = crate::pool(&url, "public", 1).await?;
            let dropped = crate::drop_schema(&pool, &name).await;
            pool.close().await;
            dropped
        });
        if let Err(dropped) = dropped {
            eprintln!("could not drop throwaway schema {}: {dropped:?}", self.name);
        }
    }
}
