//! How to connect the Postgres backend.

use std::time::Duration;

use ff_core::{EngineError, Limits, SharedClock};

/// The schema FlowFabric keeps its tables in unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "flowfabric";

/// How long an operation waits for a pooled connection unless told
/// otherwise. A server that is away fails the operation as unavailable
/// within it (the pool keeps trying to connect until then), instead of
/// holding the caller for the driver's 30 s; short enough that an HTTP
/// request answers 503 within 2 s.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Settings of [`crate::PostgresBackend::connect`].
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// A `postgres://` URL. The backend needs session pooling (or none):
    /// `LISTEN` and prepared statements live on the session.
    pub url: String,
    /// The schema holding FlowFabric's tables, created when missing. Several
    /// deployments (or tests) can share a database, one schema each.
    pub schema: String,
    /// Connections in the pool (default 16), plus one held for `LISTEN`.
    pub max_connections: u32,
    /// The longest an operation waits for a connection of the pool (and
    /// connecting at start-up may take) before failing as `Unavailable`.
    pub acquire_timeout: Duration,
    pub limits: Limits,
    /// Decides every stored time. `None` (the default): the server's clock,
    /// so processes sharing the database agree; tests pass a manual clock.
    pub clock: Option<SharedClock>,
}

impl PostgresConfig {
    /// Defaults for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            max_connections: 16,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            limits: Limits::default(),
            clock: None,
        }
    }

    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Schema names go into identifiers and channel names unquoted, so they
    /// are held to lower-case letters, digits and `_`.
    pub(crate) fn validate(&self) -> Result<(), EngineError> {
        validate_schema(&self.schema)?;
        if self.max_connections < 2 {
            return Err(EngineError::invalid(
                "max_connections",
                "must be at least 2",
            ));
        }
        if self.acquire_timeout.is_zero() {
            return Err(EngineError::invalid(
                "acquire_timeout",
                "must be longer than zero",
            ));
        }
        Ok(())
    }
}

/// Schema names go into identifiers and channel names unquoted, so they are
/// held to lower-case letters, digits and `_`, not starting with a digit,
/// and not `pg_` (reserved by Postgres).
pub(crate) fn validate_schema(s: &str) -> Result<(), EngineError> {
    let valid = !s.is_empty()
        && s.len() <= 40
        && !s.starts_with("pg_")
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(EngineError::invalid(
            "schema",
            "must be 1-40 characters of a-z, 0-9 and _, not starting with a digit or pg_",
        ))
    }
}
