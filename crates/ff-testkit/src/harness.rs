//! What a conformance scenario runs against: a fresh backend per scenario,
//! with a manual clock the scenario moves.

use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use ff_core::{CompletionBackend, EngineBackend, ManualClock};

/// One backend opened for one scenario. Dropping it drops the storage guard
/// (a temporary directory, a schema, a key prefix).
pub struct TestBackend {
    pub engine: Arc<dyn EngineBackend>,
    pub completions: Arc<dyn CompletionBackend>,
    pub clock: ManualClock,
    _guard: Box<dyn Any + Send + Sync>,
}

impl TestBackend {
    /// Bundles a backend with the clock it was opened with and whatever must
    /// live as long as it.
    pub fn new<B>(backend: Arc<B>, clock: ManualClock, guard: impl Any + Send + Sync) -> Self
    where
        B: EngineBackend + CompletionBackend,
    {
        Self {
            engine: backend.clone(),
            completions: backend,
            clock,
            _guard: Box::new(guard),
        }
    }
}

impl fmt::Debug for TestBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestBackend")
            .field("engine", &self.engine)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Opens a fresh, empty backend driven by `clock`.
#[async_trait]
pub trait BackendFactory: Send + Sync {
    async fn open(&self, clock: ManualClock) -> TestBackend;

    /// Opens a backend for the named conformance scenario. A backend whose
    /// behaviour legitimately depends on its layout (claim order holds per
    /// partition on Valkey) chooses it here; the default ignores the name.
    async fn open_for(&self, clock: ManualClock, _scenario: &str) -> TestBackend {
        self.open(clock).await
    }

    /// Opens a fresh backend on a clock at the default start time.
    async fn open_default(&self) -> TestBackend {
        self.open(ManualClock::default()).await
    }
}

/// A factory that opens every backend for one named scenario, through
/// [`BackendFactory::open_for`].
pub struct ForScenario<'a, F: ?Sized> {
    pub factory: &'a F,
    pub scenario: &'static str,
}

impl<F: ?Sized> fmt::Debug for ForScenario<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForScenario")
            .field("scenario", &self.scenario)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<F: BackendFactory + ?Sized> BackendFactory for ForScenario<'_, F> {
    async fn open(&self, clock: ManualClock) -> TestBackend {
        self.factory.open_for(clock, self.scenario).await
    }
}

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<tmp>/flowfabric-<label>-<uuid>`.
    pub fn new(label: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "flowfabric-{label}-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The URL of an external test server, read from the environment variable
/// `var` (`FF_TEST_POSTGRES_URL`, `FF_TEST_REDIS_URL`, ...). When it is
/// unset the caller skips its test: this says so loudly on stderr, and
/// panics instead under `FF_TEST_REQUIRE_ALL_BACKENDS=1`, where a skip
/// must fail the run.
pub fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let required = std::env::var("FF_TEST_REQUIRE_ALL_BACKENDS").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{var} is not set and FF_TEST_REQUIRE_ALL_BACKENDS=1: this backend's tests must run"
            );
            eprintln!("SKIPPED: {var} is not set; set it to run this test against the server");
            None
        }
    }
}
