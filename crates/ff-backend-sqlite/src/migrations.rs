//! Forward-only schema migrations, embedded in the binary. The `meta` table
//! records `schema_version` and `partitions` (always 1 on SQLite); a file
//! written by a newer build is refused rather than guessed at.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use ff_core::EngineError;

use crate::SqlResult;

/// Every migration, in order; the version is the file's number.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_flows.sql")),
    (4, include_str!("../migrations/0004_lease_token.sql")),
    (5, include_str!("../migrations/0005_signals.sql")),
    (6, include_str!("../migrations/0006_flow_control.sql")),
];

/// The schema version this build writes.
pub(crate) const LATEST: u32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// SQLite keeps one outbox partition.
const PARTITIONS: u32 = 1;

/// Brings the schema up to [`LATEST`] in one transaction, or refuses a file
/// from a newer build or with another partition count.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), EngineError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    let current = read_meta(&tx, "schema_version")?.unwrap_or(0);
    if current > LATEST {
        return Err(EngineError::conflict(format!(
            "database schema version {current} is newer than this build supports ({LATEST})"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.execute_batch(sql).db()?;
        tracing::debug!(version, "applied schema migration");
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [LATEST.to_string()],
    )
    .db()?;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('partitions', ?1) ON CONFLICT (key) DO NOTHING",
        [PARTITIONS.to_string()],
    )
    .db()?;
    let partitions = read_meta(&tx, "partitions")?.unwrap_or(PARTITIONS);
    if partitions != PARTITIONS {
        return Err(EngineError::conflict(format!(
            "database records {partitions} partitions; the SQLite backend has {PARTITIONS}"
        )));
    }
    tx.commit().db()
}

/// A numeric `meta` value; `None` when the table or the key is missing (a
/// new file).
fn read_meta(conn: &Connection, key: &str) -> Result<Option<u32>, EngineError> {
    let has_meta: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta')",
            [],
            |row| row.get(0),
        )
        .db()?;
    if !has_meta {
        return Ok(None);
    }
    let text: Option<String> = conn
        .query_row(
            "SELECT CAST(value AS TEXT) FROM meta WHERE key = ?1",
            [key],
            |row| row.get(0),
        )
        .optional()
        .db()?;
    text.map(|t| {
        t.trim().parse().map_err(|_| {
            EngineError::conflict(format!("database meta `{key}` is not a number: {t:?}"))
        })
    })
    .transpose()
}
