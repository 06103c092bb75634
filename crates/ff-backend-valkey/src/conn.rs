//! The connection: one multiplexed connection to a server, or a cluster
//! client routing each command by its first key. Either reconnects on its
//! own; a command that meets a lost connection fails as `Unavailable`.
//!
//! Neither may make a caller wait long for a server that is away. The
//! driver's own reconnection backoff starts at a second and grows past a
//! minute, so a short outage would stall every caller for minutes after the
//! server is back. Instead a reconnection is a single bounded attempt, made
//! by the next command that needs it, and every command is bounded as a
//! whole: while the server is away commands fail at once (or within
//! [`ValkeyConfig::response_timeout`]), and the first command after it is
//! back reconnects.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisError};

use ff_backend_support::OffsetClock;
use ff_core::{EngineError, SharedClock};

use crate::config::{Endpoint, ValkeyConfig};
use crate::error::classify;
use crate::library;

#[derive(Clone)]
pub(crate) struct Conn {
    link: Link,
    /// The longest one command or pipeline may take, reconnection included.
    bound: Duration,
}

#[derive(Clone)]
enum Link {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.link {
            Link::Standalone(_) => "Conn::Standalone",
            Link::Cluster(_) => "Conn::Cluster",
        })
    }
}

impl Conn {
    /// Connects once; a server that refuses or does not answer within the
    /// connect timeout is reported at once as `Unavailable`.
    pub(crate) async fn open(
        endpoint: &Endpoint,
        config: &ValkeyConfig,
    ) -> Result<Self, EngineError> {
        let unavailable = |e: RedisError| EngineError::Unavailable {
            message: format!("cannot connect to Valkey/Redis: {e}"),
        };
        let link = match endpoint {
            Endpoint::Standalone(url) => {
                let client = redis::Client::open(url.as_str())
                    .map_err(|e| EngineError::invalid("database_url", e.to_string()))?;
                let manager = redis::aio::ConnectionManagerConfig::new()
                    .set_number_of_retries(0)
                    .set_connection_timeout(config.connect_timeout)
                    .set_response_timeout(config.response_timeout);
                ConnectionManager::new_with_config(client, manager)
                    .await
                    .map(Link::Standalone)
                    .map_err(unavailable)?
            }
            Endpoint::Cluster(nodes) => {
                // Few, short retries: a node that is away is reported within
                // the bound, and the slot map is refreshed on the next try.
                let client = redis::cluster::ClusterClientBuilder::new(nodes.clone())
                    .retries(2)
                    .min_retry_wait(10)
                    .max_retry_wait(100)
                    .connection_timeout(config.connect_timeout)
                    .response_timeout(config.response_timeout)
                    .build()
                    .map_err(|e| EngineError::invalid("database_url", e.to_string()))?;
                tokio::time::timeout(bound(config), client.get_async_connection())
                    .await
                    .map_err(|_| EngineError::Unavailable {
                        message: format!(
                            "cannot connect to Valkey/Redis: no answer within {:?}",
                            bound(config)
                        ),
                    })?
                    .map(Link::Cluster)
                    .map_err(unavailable)?
            }
        };
        Ok(Self {
            link,
            bound: bound(config),
        })
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.link, Link::Cluster(_))
    }

    /// Runs one command.
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, EngineError> {
        self.raw(cmd).await.map_err(classify)
    }

    /// Runs a pipeline.
    pub(crate) async fn pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, EngineError> {
        let run = async {
            match &self.link {
                Link::Standalone(c) => pipe.query_async(&mut c.clone()).await,
                Link::Cluster(c) => pipe.query_async(&mut c.clone()).await,
            }
        };
        self.bounded(run).await.map_err(classify)
    }

    async fn raw<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        let once = || async {
            match &self.link {
                Link::Standalone(c) => cmd.query_async(&mut c.clone()).await,
                Link::Cluster(c) => cmd.query_async(&mut c.clone()).await,
            }
        };
        self.bounded(async {
            match once().await {
                // The command was never sent: the connection it met had
                // failed to reconnect earlier, and meeting it started a new
                // attempt. Waiting on that attempt answers as soon as the
                // server is back instead of failing one more caller.
                Err(err) if err.is_connection_refusal() => once().await,
                other => other,
            }
        })
        .await
    }

    async fn bounded<T>(
        &self,
        run: impl std::future::Future<Output = Result<T, RedisError>>,
    ) -> Result<T, RedisError> {
        match tokio::time::timeout(self.bound, run).await {
            Ok(answer) => answer,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer from Valkey/Redis within {:?}", self.bound),
            ))),
        }
    }

    /// Calls a library function with `key` as its only key; loads the
    /// library again when the server has lost it (a restart without
    /// persistence, a failover to a fresh replica) and retries once.
    pub(crate) async fn fcall<T: FromRedisValue>(
        &self,
        function: &str,
        key: &str,
        args: &[String],
    ) -> Result<T, EngineError> {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(function).arg(1).arg(key).arg(args);
        match self.raw(&cmd).await {
            Err(err) if err.to_string().contains("Function not found") => {
                tracing::info!(function, "the library is missing on the server; loading it");
                library::load(self).await?;
                self.query(&cmd).await
            }
            other => other.map_err(classify),
        }
    }

    /// The server's clock, read with `TIME`: every process on one server
    /// agrees on `now`.
    pub(crate) async fn server_clock(&self) -> Result<SharedClock, EngineError> {
        let conn = self.clone();
        let clock = OffsetClock::start(move || {
            let conn = conn.clone();
            async move {
                let (secs, micros): (i64, i64) = conn.query(&redis::cmd("TIME")).await?;
                Ok(secs * 1000 + micros / 1000)
            }
        })
        .await?;
        Ok(clock)
    }
}

/// The longest a command may take as a whole: a reconnection and the
/// answer, with room for the cluster client's short retries.
fn bound(config: &ValkeyConfig) -> Duration {
    config.connect_timeout + config.response_timeout
}
