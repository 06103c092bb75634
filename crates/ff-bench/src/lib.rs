//! FlowFabric's benchmark harness, run as `ff bench`. Runs a scenario (or
//! `all`) against a backend `--runs` times, each run on a fresh database
//! with the engine running, and reports medians; `--ceiling` measures the
//! raw SQLite ceiling before every run and sets each run's figures against
//! it.
//!
//! Entry points: [`BenchArgs`] (the clap arguments, flattened into `ff`'s
//! command line) and [`run`], given an [`Opener`].
//!
//! # Opening backends
//! This crate names no backend. Its caller passes an [`Opener`] that parses
//! `--database-url` and opens each run's [`Store`]: `ff-cli` implements it
//! with the same code `ff serve` and `ff demo` open their database with, so
//! the workspace keeps one URL parser and one opener, and the dependency
//! runs `ff-cli → ff-bench`, never back. What the report says of the
//! backend (version, durability) comes from `ff_core::ReadOps::describe`,
//! which every backend implements.
//!
//! # Errors
//! The harness is a reporting tool that ends in a message for the person
//! running it, so it uses `anyhow` throughout rather than a typed error.
//!
//! # Layout
//! - `args`: the command line.
//! - `run`: one invocation, from the arguments to the printed report.
//! - `opener`: [`Opener`], [`Store`] and [`Opened`].
//! - `scenarios`: what is measured, one module per scenario.
//! - `harness`: a run's backend, engine and lane; scratch directories.
//! - `worker`: the in-process no-op workers.
//! - `ceiling`: `--ceiling`, with the raw SQLite measurement in
//!   `ceiling::raw_sqlite`.
//! - `stats`: HDR histograms, the engine's lag buckets, medians.
//! - `machine`: the machine and build the figures came from.
//! - `report`, `markdown`, `svg`: text and JSON, `--markdown`, the chart.
//! - `progress`: the progress bar.

mod args;
mod ceiling;
mod harness;
mod machine;
mod markdown;
mod opener;
mod progress;
mod report;
mod run;
mod scenarios;
mod stats;
mod svg;
mod worker;

pub use args::BenchArgs;
pub use opener::{Database, Opened, Opener, Store, Synchronous};
pub use run::run;
