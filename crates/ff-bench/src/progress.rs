//! The progress bar on stderr: one step per measured run, the current one
//! named. Hidden for `--json` and when stderr is not a terminal, so scripts
//! and logs get only the results.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

pub fn bar(steps: u64, hidden: bool) -> anyhow::Result<ProgressBar> {
    if hidden || !std::io::stderr().is_terminal() {
        return Ok(ProgressBar::hidden());
    }
    let style = ProgressStyle::with_template(
        "{spinner} {elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} {msg}",
    )
    .context("progress bar template")?
    .progress_chars("=> ");
    let bar = ProgressBar::new(steps).with_style(style);
    bar.enable_steady_tick(Duration::from_millis(100));
    Ok(bar)
}
