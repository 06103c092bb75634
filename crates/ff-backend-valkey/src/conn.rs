//! The connection: one multiplexed connection to a server, or a cluster
//! client routing each command by its first key. Either reconnects on its
//! own; a command that meets a lost connection fails as `Unavailable`.

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, RedisError};

use ff_core::EngineError;

use crate::config::Endpoint;
use crate::library;

#[derive(Clone)]
pub(crate) enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Standalone(_) => "Conn::Standalone",
            Self::Cluster(_) => "Conn::Cluster",
        })
    }
}

impl Conn {
    pub(crate) async fn open(endpoint: &Endpoint) -> Result<Self, EngineError> {
        let unavailable = |e: RedisError| EngineError::Unavailable {
            message: format!("cannot connect to Valkey/Redis: {e}"),
        };
        match endpoint {
            Endpoint::Standalone(url) => {
                let client = redis::Client::open(url.as_str())
                    .map_err(|e| EngineError::invalid("database_url", e.to_string()))?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_number_of_retries(2)
                    .set_connection_timeout(std::time::Duration::from_secs(5));
                ConnectionManager::new_with_config(client, config)
                    .await
                    .map(Self::Standalone)
                    .map_err(unavailable)
            }
            Endpoint::Cluster(nodes) => {
                let client = redis::cluster::ClusterClient::new(nodes.clone())
                    .map_err(|e| EngineError::invalid("database_url", e.to_string()))?;
                client
                    .get_async_connection()
                    .await
                    .map(Self::Cluster)
                    .map_err(unavailable)
            }
        }
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Runs one command.
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, EngineError> {
        self.raw(cmd).await.map_err(classify)
    }

    async fn raw<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        match self {
            Self::Standalone(c) => cmd.query_async(&mut c.clone()).await,
            Self::Cluster(c) => cmd.query_async(&mut c.clone()).await,
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
}

/// A lost or refused connection is `Unavailable` (the call may be
/// retried); anything else the server reports is `Backend`.
pub(crate) fn classify(err: RedisError) -> EngineError {
    if err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_cluster_error()
        || matches!(
            err.kind(),
            redis::ErrorKind::BusyLoadingError | redis::ErrorKind::TryAgain
        )
    {
        EngineError::Unavailable {
            message: err.to_string(),
        }
    } else {
        EngineError::backend(err)
    }
}
