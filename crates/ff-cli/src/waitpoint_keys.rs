//! `ff waitpoint-keys rotate`, and adopting `FF_WAITPOINT_SECRET` when a
//! server starts: the keyring that signs waitpoint tokens, in the backend.

use anyhow::Context;
use clap::{Args, Subcommand};
use ff_core::suspension::WaitpointSecret;

use crate::backend::{Backend, DatabaseArgs};
use crate::client_cmds::parse_duration_ms;

/// How long the keys a rotation retires keep verifying when
/// `FF_WAITPOINT_SECRET` changes.
const ADOPT_GRACE_MS: u64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Subcommand)]
pub enum WaitpointKeysCommand {
    /// Make a new key sign waitpoint tokens; tokens signed before keep
    /// verifying until the grace ends.
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// How long tokens signed with the older keys keep verifying (at
    /// least 2m): `30m`, `24h`, `7d`.
    #[arg(long, default_value = "24h", value_parser = parse_duration_ms)]
    grace: u64,
    /// The new key's secret, 64 hex digits (default: random).
    #[arg(long, env = "FF_NEW_WAITPOINT_SECRET", hide_env_values = true)]
    secret: Option<String>,
}

pub async fn run(command: WaitpointKeysCommand) -> anyhow::Result<std::process::ExitCode> {
    let WaitpointKeysCommand::Rotate(args) = command;
    let secret = args
        .secret
        .as_deref()
        .map(WaitpointSecret::from_hex)
        .transpose()?;
    args.database.check_sqlite_dir(false)?;
    let backend = args.database.open().await?;
    let rotated = backend
        .engine
        .rotate_waitpoint_key(secret, args.grace)
        .await;
    backend.close().await;
    let kid = rotated.context("rotating the waitpoint key")?;
    println!(
        "{kid} signs waitpoint tokens now; older keys verify for {} s more",
        args.grace / 1000
    );
    Ok(std::process::ExitCode::SUCCESS)
}

/// Makes `secret` (64 hex digits) the signing key of `backend`'s keyring.
pub async fn adopt(backend: &Backend, secret: &str) -> anyhow::Result<()> {
    let secret = WaitpointSecret::from_hex(secret).context("FF_WAITPOINT_SECRET")?;
    let rotated = backend
        .engine
        .adopt_waitpoint_secret(secret, ADOPT_GRACE_MS)
        .await
        .context("adopting FF_WAITPOINT_SECRET")?;
    if let Some(kid) = rotated {
        eprintln!("ff serve: FF_WAITPOINT_SECRET signs waitpoint tokens now, as key {kid}");
    }
    Ok(())
}
