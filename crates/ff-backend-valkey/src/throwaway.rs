//! [`ThrowawayPrefix`]: a key prefix of its own for a test or a benchmark
//! run, its keys deleted when the guard drops; and [`drop_prefix`], the
//! admin tool that deletes a deployment's keys.

use ff_core::EngineError;

use crate::config::Endpoint;

/// A fresh prefix on the server at `url`; dropping the guard deletes every
/// key under it, however the test ends.
#[derive(Debug)]
pub struct ThrowawayPrefix {
    url: String,
    name: String,
}

impl ThrowawayPrefix {
    /// A new, unique `fft-...` prefix.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            name: format!("fft-{}", uuid::Uuid::now_v7().simple()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ThrowawayPrefix {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = ff_backend_support::block_on_own_thread(move || async move {
            drop_prefix(&url, &name).await
        });
        if let Err(dropped) = dropped {
            eprintln!(
                "could not delete the keys of prefix {}: {dropped:?}",
                self.name
            );
        }
    }
}

/// Deletes every key under `prefix` on every primary, with `SCAN` (an
/// admin tool: the backend itself never scans). Returns how many it deleted.
pub async fn drop_prefix(url: &str, prefix: &str) -> Result<u64, EngineError> {
    let nodes = match Endpoint::parse(url)? {
        Endpoint::Standalone(url) => vec![url],
        Endpoint::Cluster(seeds) => primaries(&seeds[0]).await?,
    };
    let mut deleted = 0;
    for node in nodes {
        deleted += drop_on_node(&node, prefix).await?;
    }
    Ok(deleted)
}

async fn connect(url: &str) -> Result<redis::aio::MultiplexedConnection, EngineError> {
    let client = redis::Client::open(url).map_err(EngineError::backend)?;
    client
        .get_multiplexed_async_connection()
        .await
        .map_err(crate::error::classify)
}

/// The cluster's primaries, as `redis://host:port` URLs.
async fn primaries(seed: &str) -> Result<Vec<String>, EngineError> {
    let mut conn = connect(seed).await?;
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await
        .map_err(crate::error::classify)?;
    let scheme_and_auth = seed
        .split_once("://")
        .map_or("redis://".to_owned(), |(s, rest)| {
            match rest.rsplit_once('@') {
                Some((auth, _)) => format!("{s}://{auth}@"),
                None => format!("{s}://"),
            }
        });
    Ok(nodes
        .lines()
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let _id = cols.next()?;
            let addr = cols.next()?.split('@').next()?;
            let flags = cols.next()?;
            flags
                .split(',')
                .any(|f| f == "master")
                .then(|| format!("{scheme_and_auth}{addr}"))
        })
        .collect())
}

async fn drop_on_node(url: &str, prefix: &str) -> Result<u64, EngineError> {
    let mut conn = connect(url).await?;
    let pattern = format!("{prefix}:*");
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .map_err(crate::error::classify)?;
        for key in &keys {
            // One key per call: on a cluster the keys of a batch may live in
            // different slots.
            let n: u64 = redis::cmd("UNLINK")
                .arg(key)
                .query_async(&mut conn)
                .await
                .map_err(crate::error::classify)?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}
