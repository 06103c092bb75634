//! Driver errors in the engine's terms.

use redis::RedisError;

use ff_core::EngineError;

/// A lost or refused connection, a node loading, failing over or away, is
/// `Unavailable` (the call may be retried); anything else the server
/// reports is `Backend`.
pub(crate) fn classify(err: RedisError) -> EngineError {
    if err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_cluster_error()
        || matches!(
            err.kind(),
            redis::ErrorKind::BusyLoadingError
                | redis::ErrorKind::TryAgain
                | redis::ErrorKind::MasterDown
                | redis::ErrorKind::ReadOnly
                // The cluster client has no connection to the node owning
                // the slot: the node is away.
                | redis::ErrorKind::ClusterConnectionNotFound
        )
    {
        EngineError::Unavailable {
            message: err.to_string(),
        }
    } else {
        EngineError::backend(err)
    }
}
