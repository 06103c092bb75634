//! How to connect the Valkey backend.

use std::time::Duration;

use ff_core::{EngineError, Limits, SharedClock};

/// The key prefix FlowFabric uses unless told otherwise.
pub const DEFAULT_PREFIX: &str = "ff";

/// Partitions of a new deployment on one server: claim order then holds
/// across the whole lane.
pub const DEFAULT_PARTITIONS_STANDALONE: u32 = 1;

/// Partitions of a new deployment on a cluster: enough to spread over the
/// primaries of a typical cluster, few enough that an empty lane stays cheap.
pub const DEFAULT_PARTITIONS_CLUSTER: u32 = 16;

/// How long one attempt at connecting to a node may take unless told
/// otherwise: a refused connection fails at once, this bounds a silent one.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one command may wait for its answer unless told otherwise. An
/// operation makes a few round trips, so a server that stops answering is
/// reported as unavailable within a few of these rather than never.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The most partitions a deployment may have (their number is kept in 16
/// bits of every id).
pub const MAX_PARTITIONS: u32 = 1024;

/// Settings of [`crate::ValkeyBackend::connect`].
#[derive(Debug, Clone)]
pub struct ValkeyConfig {
    /// `redis://host:port[/db]` for one server, or
    /// `redis+cluster://host:port[,host:port...]` for a cluster.
    pub url: String,
    /// Starts every key and channel name, so deployments (and tests) can
    /// share a server.
    pub prefix: String,
    /// The number of partitions, fixed when the prefix is first used;
    /// `None` takes the stored number, or the default for a new prefix.
    pub partitions: Option<u32>,
    pub limits: Limits,
    /// Decides every stored time. `None` (the default): the server's
    /// `TIME`, so processes sharing the server agree; tests pass a manual
    /// clock.
    pub clock: Option<SharedClock>,
    /// The longest one connection attempt may take.
    pub connect_timeout: Duration,
    /// The longest one command may wait for its answer; a command past it
    /// fails as `Unavailable`.
    pub response_timeout: Duration,
}

impl ValkeyConfig {
    /// Defaults for the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            partitions: None,
            limits: Limits::default(),
            clock: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        }
    }

    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    pub fn partitions(mut self, partitions: u32) -> Self {
        self.partitions = Some(partitions);
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

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Checks the settings; changes nothing.
    pub fn validate(&self) -> Result<(), EngineError> {
        Endpoint::parse(&self.url)?;
        if self.prefix.is_empty()
            || self.prefix.len() > 64
            || !self
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(EngineError::invalid(
                "prefix",
                "use 1 to 64 letters, digits, _ - or .",
            ));
        }
        if let Some(p) = self.partitions {
            if p == 0 || p > MAX_PARTITIONS {
                return Err(EngineError::invalid(
                    "partitions",
                    format!("must be between 1 and {MAX_PARTITIONS}"),
                ));
            }
        }
        for (field, timeout) in [
            ("connect_timeout", self.connect_timeout),
            ("response_timeout", self.response_timeout),
        ] {
            if timeout.is_zero() {
                return Err(EngineError::invalid(field, "must be longer than zero"));
            }
        }
        Ok(())
    }
}

/// Where the server is: one node, or a cluster's seed nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A `redis://` URL.
    Standalone(String),
    /// `redis://host:port` URLs of seed nodes.
    Cluster(Vec<String>),
}

impl Endpoint {
    /// Reads a `redis://` or `redis+cluster://` URL.
    pub fn parse(url: &str) -> Result<Self, EngineError> {
        if let Some(rest) = url.strip_prefix("redis+cluster://") {
            let (auth, hosts) = match rest.rsplit_once('@') {
                Some((auth, hosts)) => (format!("{auth}@"), hosts),
                None => (String::new(), rest),
            };
            let hosts = hosts.trim_end_matches('/');
            let nodes: Vec<String> = hosts
                .split(',')
                .filter(|h| !h.is_empty())
                .map(|h| format!("redis://{auth}{h}"))
                .collect();
            if nodes.is_empty() {
                return Err(EngineError::invalid(
                    "database_url",
                    "redis+cluster:// needs at least one host:port",
                ));
            }
            Ok(Self::Cluster(nodes))
        } else if url.starts_with("redis://") {
            Ok(Self::Standalone(url.to_owned()))
        } else {
            Err(EngineError::invalid(
                "database_url",
                "expected redis://host:port or redis+cluster://host:port[,host:port...]",
            ))
        }
    }

    /// Every node named, each a `redis://` URL.
    pub(crate) fn nodes(&self) -> Vec<String> {
        match self {
            Self::Standalone(url) => vec![url.clone()],
            Self::Cluster(nodes) => nodes.clone(),
        }
    }

    /// The node reports ask about the server.
    pub(crate) fn first_node(&self) -> &str {
        match self {
            Self::Standalone(url) => url,
            Self::Cluster(nodes) => &nodes[0],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_mode() {
        assert_eq!(
            Endpoint::parse("redis://127.0.0.1:6379").unwrap(),
            Endpoint::Standalone("redis://127.0.0.1:6379".into())
        );
        assert_eq!(
            Endpoint::parse("redis+cluster://a:1,b:2").unwrap(),
            Endpoint::Cluster(vec!["redis://a:1".into(), "redis://b:2".into()])
        );
        assert!(Endpoint::parse("postgres://x").is_err());
        assert!(Endpoint::parse("redis+cluster://").is_err());
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(ValkeyConfig::new("redis://x")
            .prefix("a{b}")
            .validate()
            .is_err());
        assert!(ValkeyConfig::new("redis://x")
            .prefix("ok-1")
            .validate()
            .is_ok());
        assert!(ValkeyConfig::new("redis://x")
            .partitions(0)
            .validate()
            .is_err());
    }
}
