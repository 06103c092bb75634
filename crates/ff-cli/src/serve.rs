//! `ff serve`: the HTTP API and the engine in one process, until Ctrl-C or
//! SIGTERM; then it drains (no more claims, open long-polls answer 204),
//! stops the engine and closes the backend.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;
use ff_engine::{shutdown, EngineConfig};
use ff_server::ServerConfig;
use tokio::net::TcpListener;

use crate::backend::DatabaseArgs;

/// `ff serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "FF_LISTEN", default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// Require `Authorization: Bearer TOKEN` on the API.
    #[arg(long, env = "FF_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// Create the missing directories of a SQLite `--db` path. Without it a
    /// path whose directory does not exist is refused (likely a typo that
    /// would start an empty database); the default `.flowfabric/ff.db` is
    /// always created.
    #[arg(long)]
    create_dirs: bool,
    /// Require `Authorization: Bearer TOKEN` on `/metrics` (default: the
    /// API token, when one is set).
    #[arg(long, env = "FF_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// The longest a long-poll claim waits for work, in milliseconds
    /// (a request's `wait_ms` is cut to it).
    #[arg(
        long,
        env = "FF_MAX_CLAIM_WAIT_MS",
        default_value_t = 30_000,
        value_parser = clap::value_parser!(u64).range(1..=300_000)
    )]
    max_claim_wait_ms: u64,
    /// The secret that signs waitpoint tokens, 64 hex digits. When the
    /// stored signing key has another, this one becomes the signing key
    /// (the old ones verify for 24 h more), so every server given it signs
    /// alike. Without it the stored keyring is used (its first key made at
    /// random).
    #[arg(long, env = "FF_WAITPOINT_SECRET", hide_env_values = true)]
    waitpoint_secret: Option<String>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<std::process::ExitCode> {
    args.database.check_sqlite_dir(args.create_dirs)?;
    let backend = args.database.open().await?;
    if let Some(secret) = args.waitpoint_secret.as_deref().filter(|s| !s.is_empty()) {
        crate::waitpoint_keys::adopt(&backend, secret).await?;
    }
    // Which data this process serves, on stderr: stdout's first line stays
    // the address alone.
    eprintln!("ff serve: {}", args.database.describe());
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // The one line on stdout: scripts and tests read the address from it.
    println!("listening on http://{addr}");
    let (trigger, mut signal) = shutdown::channel();
    crate::signals::spawn_handler(trigger);
    let config = ServerConfig {
        api_token: args.api_token.filter(|t| !t.is_empty()),
        metrics_token: args.metrics_token.filter(|t| !t.is_empty()),
        max_claim_wait: std::time::Duration::from_millis(args.max_claim_wait_ms),
        ..ServerConfig::default()
    };
    let served = ff_server::serve(
        listener,
        backend.engine.clone(),
        backend.completions.clone(),
        EngineConfig::default(),
        config,
        async move { signal.wait().await },
    )
    .await;
    backend.close().await;
    served.context("serving HTTP")?;
    eprintln!("stopped cleanly");
    Ok(std::process::ExitCode::SUCCESS)
}
