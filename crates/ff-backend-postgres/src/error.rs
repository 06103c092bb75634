//! Driver errors in the engine's terms: which failures are `Unavailable`
//! (retry later), which races are worth retrying at once, and the error of
//! the statement helpers that keeps the driver's error for that choice.

use ff_core::EngineError;

/// Maps driver errors into the engine's.
pub(crate) trait PgResult<T> {
    fn db(self) -> Result<T, EngineError>;
}

impl<T> PgResult<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, EngineError> {
        self.map_err(classify)
    }
}

/// A lost or exhausted connection, or a server shutting down, starting up
/// or out of connections, is `Unavailable` (the call may be retried);
/// anything else the server or driver reports is `Backend`.
pub(crate) fn classify(err: sqlx::Error) -> EngineError {
    let unavailable = match &err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| is_unavailable_code(&code)),
        _ => false,
    };
    if unavailable {
        EngineError::Unavailable {
            message: err.to_string(),
        }
    } else {
        EngineError::backend(err)
    }
}

/// SQLSTATEs that say the server cannot serve now rather than that the
/// statement is wrong: class 08 (connection exception), 53300
/// (too_many_connections), 57P01-57P03 (admin or crash shutdown, cannot
/// connect now).
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "53300" | "57P01" | "57P02" | "57P03")
}

/// Whether `err` is worth retrying the whole operation: a unique index
/// raced (another writer inserted the same key first), a deadlock, or a
/// serialization failure.
pub(crate) fn is_retryable(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| matches!(code.as_ref(), "23505" | "40P01" | "40001"))
}

/// A failure of a shared statement helper, keeping the driver's error so
/// callers can tell a race worth retrying from a real failure.
#[derive(Debug)]
pub(crate) enum StoreError {
    Sql(sqlx::Error),
    Engine(EngineError),
}

impl StoreError {
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(self, Self::Sql(err) if is_retryable(err))
    }
}

impl From<EngineError> for StoreError {
    fn from(err: EngineError) -> Self {
        Self::Engine(err)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::Sql(err)
    }
}

impl From<StoreError> for EngineError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Sql(err) => classify(err),
            StoreError::Engine(err) => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_cannot_serve_now_is_unavailable() {
        for code in ["08006", "08001", "53300", "57P01", "57P03"] {
            assert!(is_unavailable_code(code), "{code}");
        }
        for code in ["23505", "40001", "42P01", "57014"] {
            assert!(!is_unavailable_code(code), "{code}");
        }
        let err = classify(sqlx::Error::PoolTimedOut);
        assert_eq!(err.kind(), ff_core::ErrorKind::Unavailable);
    }
}
