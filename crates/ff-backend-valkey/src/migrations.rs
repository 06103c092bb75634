//! The deployment's settings record (`{prefix}:meta`): the key layout's
//! version and the partition count, recorded on first use and checked on
//! every connect.

use ff_core::EngineError;

use crate::conn::Conn;
use crate::{config, ValkeyConfig};

/// The version of the key layout this build writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Reads the deployment's settings, recording them on first use; refuses a
/// newer layout or a different partition count.
pub(crate) async fn settle_meta(conn: &Conn, config: &ValkeyConfig) -> Result<u32, EngineError> {
    let meta = format!("{}:meta", config.prefix);
    let wanted = config.partitions.unwrap_or(if conn.is_cluster() {
        config::DEFAULT_PARTITIONS_CLUSTER
    } else {
        config::DEFAULT_PARTITIONS_STANDALONE
    });
    let _: i64 = conn
        .query(
            redis::cmd("HSETNX")
                .arg(&meta)
                .arg("partitions")
                .arg(wanted),
        )
        .await?;
    let _: i64 = conn
        .query(
            redis::cmd("HSETNX")
                .arg(&meta)
                .arg("schema_version")
                .arg(SCHEMA_VERSION),
        )
        .await?;
    let (partitions, version): (Option<u32>, Option<u32>) = conn
        .query(
            redis::cmd("HMGET")
                .arg(&meta)
                .arg("partitions")
                .arg("schema_version"),
        )
        .await?;
    let (Some(partitions), Some(version)) = (partitions, version) else {
        return Err(EngineError::backend(format!("{meta} is incomplete")));
    };
    if partitions == 0 || partitions > config::MAX_PARTITIONS {
        return Err(EngineError::backend(format!(
            "{meta} records {partitions} partitions, outside 1..={}",
            config::MAX_PARTITIONS
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(EngineError::Conflict {
            message: format!(
                "prefix `{}` holds schema version {version}, newer than this build's {SCHEMA_VERSION}; upgrade ff",
                config.prefix
            ),
        });
    }
    if config.partitions.is_some_and(|p| p != partitions) {
        return Err(EngineError::Conflict {
            message: format!(
                "prefix `{}` was created with {partitions} partitions, not {wanted}; the count is fixed",
                config.prefix
            ),
        });
    }
    Ok(partitions)
}
