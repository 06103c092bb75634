//! The Lua library: loaded with `FUNCTION LOAD REPLACE` on every primary at
//! connect, then verified. Function names carry the library's version
//! (`ff_v2_*`) and so does its name, so a newer library can be loaded
//! beside this one during a rolling upgrade.

use ff_core::EngineError;

use crate::conn::Conn;

/// The library's version, in its name and its functions' names.
pub(crate) const VERSION: i64 = 2;

/// The library source: one file per entity, under one header.
fn source() -> String {
    [
        "#!lua name=flowfabric_v2\n",
        include_str!("../lua/apply.lua"),
        include_str!("../lua/flow_control.lua"),
        include_str!("../lua/claim.lua"),
        include_str!("../lua/outbox.lua"),
    ]
    .join("\n")
}

/// Loads the library on every primary (the cluster client sends `FUNCTION
/// LOAD` to all of them).
pub(crate) async fn load(conn: &Conn) -> Result<(), EngineError> {
    let _: String = conn
        .query(
            redis::cmd("FUNCTION")
                .arg("LOAD")
                .arg("REPLACE")
                .arg(source()),
        )
        .await?;
    Ok(())
}

/// Checks that the function answering at `key`'s node is this version.
pub(crate) async fn verify(conn: &Conn, key: &str) -> Result<(), EngineError> {
    let version: i64 = conn.fcall("ff_v2_version", key, &[]).await?;
    if version == VERSION {
        Ok(())
    } else {
        Err(EngineError::backend(format!(
            "the server's flowfabric library is version {version}, expected {VERSION}"
        )))
    }
}
