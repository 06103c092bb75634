//! Forward-only schema migrations, embedded in the binary and applied under
//! a transaction-scoped advisory lock, so processes connecting at once
//! neither race nor apply a file twice. The `meta` table records
//! `schema_version` and `partitions` (always 1 on Postgres); a schema written
//! by a newer build is refused rather than guessed at.

use sqlx::{PgConnection, PgPool};

use ff_core::EngineError;

use crate::PgResult;

/// Every migration, in order; the version is the file's number.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_flows.sql")),
    (3, include_str!("../migrations/0003_completion_ranges.sql")),
    (4, include_str!("../migrations/0004_lease_token.sql")),
    (5, include_str!("../migrations/0005_signals.sql")),
    (6, include_str!("../migrations/0006_flow_control.sql")),
];

/// The schema version this build writes.
pub(crate) const LATEST: u32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Postgres keeps one outbox partition.
pub(crate) const PARTITIONS: u32 = 1;

/// Creates `schema` when missing and brings it up to [`LATEST`] in one
/// transaction, or refuses a schema from a newer build or with another
/// partition count.
pub(crate) async fn migrate(pool: &PgPool, schema: String) -> Result<(), EngineError> {
    let mut tx = pool.begin().await.db()?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('flowfabric migrate ' || $1))")
        .bind(&schema)
        .execute(&mut *tx)
        .await
        .db()?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .execute(&mut *tx)
        .await
        .db()?;
    let current = read_meta(&mut tx, &schema, "schema_version")
        .await?
        .unwrap_or(0);
    if current > LATEST {
        return Err(EngineError::conflict(format!(
            "database schema version {current} is newer than this build supports ({LATEST})"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let sql: &'static str = sql;
        sqlx::Executor::execute(&mut *tx, sql).await.db()?;
        tracing::debug!(version, schema, "applied schema migration");
    }
    sqlx::query(
        "INSERT INTO meta (key, value) VALUES ('schema_version', $1) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(LATEST.to_string())
    .execute(&mut *tx)
    .await
    .db()?;
    sqlx::query(
        "INSERT INTO meta (key, value) VALUES ('partitions', $1) ON CONFLICT (key) DO NOTHING",
    )
    .bind(PARTITIONS.to_string())
    .execute(&mut *tx)
    .await
    .db()?;
    let partitions = read_meta(&mut tx, &schema, "partitions")
        .await?
        .unwrap_or(PARTITIONS);
    if partitions != PARTITIONS {
        return Err(EngineError::conflict(format!(
            "database records {partitions} partitions; the Postgres backend has {PARTITIONS}"
        )));
    }
    tx.commit().await.db()
}

/// A numeric `meta` value; `None` when the table or the key is missing (a
/// new schema).
async fn read_meta(
    conn: &mut PgConnection,
    schema: &str,
    key: &'static str,
) -> Result<Option<u32>, EngineError> {
    let has_meta: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("{schema}.meta"))
        .fetch_one(&mut *conn)
        .await
        .db()?;
    if !has_meta {
        return Ok(None);
    }
    let text: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    text.map(|t| {
        t.trim().parse().map_err(|_| {
            EngineError::conflict(format!("database meta `{key}` is not a number: {t:?}"))
        })
    })
    .transpose()
}

/// Drops `schema` and everything in it. For tests and `ff` tooling that
/// made a throw-away schema.
pub async fn drop_schema(pool: &PgPool, schema: &str) -> Result<(), EngineError> {
    crate::config::validate_schema(schema)?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(pool)
        .await
        .db()?;
    Ok(())
}
