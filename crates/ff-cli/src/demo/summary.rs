//! The demo's closing table: how the submitted executions ended, read back
//! from the database (so a resumed run reports them all, not just what this
//! process saw), and how fast this run moved them.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use ff_core::{EngineBackend, ExecutionId, ListFilter, State};

use super::LANE;

/// How the demo's executions ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcomes {
    pub completed: u64,
    pub failed: u64,
    /// Cancelled or skipped; the demo causes neither, so anything here came
    /// from outside.
    pub other_terminal: u64,
    pub unfinished: u64,
    /// Executions that needed more than one attempt, whatever their outcome.
    pub retried: u64,
}

impl Outcomes {
    pub fn total(&self) -> u64 {
        self.completed + self.failed + self.other_terminal + self.unfinished
    }
}

/// Tallies the executions `ids` by reading the demo lane page by page.
pub async fn collect(backend: &dyn EngineBackend, ids: &[ExecutionId]) -> anyhow::Result<Outcomes> {
    let wanted: HashSet<ExecutionId> = ids.iter().copied().collect();
    let mut filter = ListFilter {
        lane: Some(LANE.to_owned()),
        limit: 1000,
        ..ListFilter::default()
    };
    let mut outcomes = Outcomes::default();
    loop {
        let page = backend
            .list_executions(&filter)
            .await
            .context("reading the demo's executions")?;
        for exec in page.items.iter().filter(|e| wanted.contains(&e.id)) {
            match exec.state {
                State::Completed => outcomes.completed += 1,
                State::Failed => outcomes.failed += 1,
                State::Cancelled | State::Skipped => outcomes.other_terminal += 1,
                _ => outcomes.unfinished += 1,
            }
            outcomes.retried += u64::from(exec.attempt > 1);
        }
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => return Ok(outcomes),
        }
    }
}

/// The table printed at the end of a run.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub outcomes: Outcomes,
    /// Executions that became terminal during this run (all of them on a
    /// fresh database; fewer when resuming).
    pub finished_here: u64,
    /// From the first submit to the last execution becoming terminal.
    pub elapsed: Duration,
}

impl Summary {
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.finished_here as f64 / secs
        } else {
            0.0
        }
    }

    /// The table, one `label  value` row per line.
    pub fn render(&self) -> String {
        let o = &self.outcomes;
        let mut rows = vec![
            ("completed", group(o.completed), String::new()),
            (
                "retried",
                group(o.retried),
                "needed more than one attempt".to_owned(),
            ),
            ("failed", group(o.failed), "ran out of attempts".to_owned()),
        ];
        if o.other_terminal > 0 {
            rows.push(("cancelled/skipped", group(o.other_terminal), String::new()));
        }
        if o.unfinished > 0 {
            rows.push((
                "unfinished",
                group(o.unfinished),
                "run again to resume".to_owned(),
            ));
        }
        rows.push(("total", group(o.total()), String::new()));
        let resumed = o.total().saturating_sub(self.finished_here);
        rows.push((
            "elapsed",
            format!("{:.2} s", self.elapsed.as_secs_f64()),
            "submit included".to_owned(),
        ));
        rows.push((
            "throughput",
            format!("{} jobs/s", group(self.throughput().round() as u64)),
            if resumed > 0 {
                format!(
                    "{} finished in this run, {} before",
                    group(self.finished_here),
                    group(resumed)
                )
            } else {
                String::new()
            },
        ));
        let width = rows.iter().map(|(_, v, _)| v.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(label, value, note)| {
                let line = format!("  {label:<18}{value:>width$}  {note}");
                format!("{}\n", line.trim_end())
            })
            .collect()
    }
}

/// `1234567` as `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }

    #[test]
    fn renders_every_row() {
        let summary = Summary {
            outcomes: Outcomes {
                completed: 9_999,
                failed: 1,
                retried: 101,
                ..Outcomes::default()
            },
            finished_here: 10_000,
            elapsed: Duration::from_millis(500),
        };
        let table = summary.render();
        for expected in [
            "completed",
            "9,999",
            "retried",
            "101",
            "failed",
            "total",
            "10,000",
            "20,000 jobs/s",
        ] {
            assert!(table.contains(expected), "{expected} missing from\n{table}");
        }
        assert!(!table.contains("unfinished"));
    }
}
