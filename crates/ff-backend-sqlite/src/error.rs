//! Driver errors in the engine's terms.

use ff_core::EngineError;

/// `EngineError` for a backend that has been closed.
pub(crate) fn closed() -> EngineError {
    EngineError::Unavailable {
        message: "the SQLite backend is closed".to_owned(),
    }
}

/// Maps a SQLite error: a busy or locked database is retryable
/// (`Unavailable`), anything else is a `Backend` failure.
fn sql_error(err: rusqlite::Error) -> EngineError {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    match &err {
        rusqlite::Error::SqliteFailure(e, _) if matches!(e.code, DatabaseBusy | DatabaseLocked) => {
            EngineError::Unavailable {
                message: format!("database is busy: {err}"),
            }
        }
        _ => EngineError::backend(err),
    }
}

/// `.db()` turns a rusqlite result into an `EngineError` one.
pub(crate) trait SqlResult<T> {
    fn db(self) -> Result<T, EngineError>;
}

impl<T> SqlResult<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T, EngineError> {
        self.map_err(sql_error)
    }
}
