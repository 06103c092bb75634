//! Which backend a database URL names: the embedded SQLite default,
//! Postgres, or Valkey/Redis (one server or a cluster).

use std::path::PathBuf;

use anyhow::bail;

/// A parsed `--database-url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://PATH`, `sqlite:PATH` or a plain path.
    Sqlite(PathBuf),
    /// `postgres://...` or `postgresql://...`, passed to the driver as is.
    Postgres(String),
    /// `redis://...` or `redis+cluster://...`, passed to the backend as is.
    Valkey(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let url = url.trim();
        if url.is_empty() {
            bail!("the database URL is empty");
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                bail!("`{url}` names no file; use sqlite://PATH");
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        match url.split_once("://").map(|(scheme, _)| scheme) {
            None => Ok(Self::Sqlite(PathBuf::from(url))),
            Some("postgres" | "postgresql") => Ok(Self::Postgres(url.to_owned())),
            Some("redis" | "redis+cluster") => Ok(Self::Valkey(url.to_owned())),
            Some(scheme @ ("rediss" | "valkey")) => {
                bail!("`{scheme}://` is not supported; use redis://HOST:PORT or redis+cluster://HOST:PORT,...")
            }
            Some(scheme) => {
                bail!("unknown database URL scheme `{scheme}`; use sqlite://PATH, postgres://... or redis://...")
            }
        }
    }
}

/// `text` with the password of any URL in it replaced by `***`, for
/// reports and logs.
pub fn redacted(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => text.to_owned(),
        },
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redacted("postgres://app:s3cr@t@db:5432/app?sslmode=require"),
            "postgres://app:***@db:5432/app?sslmode=require"
        );
        assert_eq!(redacted("postgres://app@db/app"), "postgres://app@db/app");
        assert_eq!(redacted("/tmp/ff.db"), "/tmp/ff.db");
    }

    fn sqlite(url: &str) -> PathBuf {
        match DatabaseUrl::parse(url) {
            Ok(DatabaseUrl::Sqlite(path)) => path,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn sqlite_urls_and_plain_paths() {
        assert_eq!(
            sqlite("sqlite://.flowfabric/ff.db"),
            PathBuf::from(".flowfabric/ff.db")
        );
        assert_eq!(sqlite("sqlite:///tmp/x.db"), PathBuf::from("/tmp/x.db"));
        assert_eq!(sqlite("sqlite:data.db"), PathBuf::from("data.db"));
        assert_eq!(sqlite("/var/lib/ff.db"), PathBuf::from("/var/lib/ff.db"));
    }

    #[test]
    fn postgres_urls_pass_through() {
        assert_eq!(
            DatabaseUrl::parse("postgres://u@h:5432/db").ok(),
            Some(DatabaseUrl::Postgres("postgres://u@h:5432/db".to_owned()))
        );
        assert!(matches!(
            DatabaseUrl::parse("postgresql://h/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
    }

    #[test]
    fn other_backends_are_refused_clearly() {
        let err = |url: &str| DatabaseUrl::parse(url).map(|_| ()).unwrap_err().to_string();
        assert!(matches!(
            DatabaseUrl::parse("redis+cluster://a:1,b:2"),
            Ok(DatabaseUrl::Valkey(_))
        ));
        assert!(err("rediss://127.0.0.1").contains("not supported"));
        assert!(err("mysql://h/db").contains("unknown database URL scheme `mysql`"));
        assert!(err("sqlite://").contains("names no file"));
        assert!(err("").contains("empty"));
    }
}
