//! `ff why ID`: what holds an execution that is not running.

use clap::Args;
use ff_core::explain::Holding;
use ff_core::flow_control::Held;
use ff_core::ExecutionId;

use super::failure::Failure;
use super::table::time;
use super::{print_json, OutputArgs, ServerArgs};

/// Options of `ff why`.
#[derive(Debug, Args)]
pub struct WhyArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// The execution id.
    id: String,
}

pub async fn why(args: WhyArgs) -> anyhow::Result<()> {
    let client = args.server.connect()?;
    let id: ExecutionId = args
        .id
        .parse()
        .map_err(|_| Failure::invalid("id", format!("`{}` is not an id", args.id)))?;
    let answer = client
        .why(id)
        .await
        .map_err(|err| args.server.explain(err))?;
    if args.output.json {
        return print_json(&answer);
    }
    println!("{id} is {}: {}", answer.state, reason(&answer.holding));
    Ok(())
}

/// One line a person reads.
fn reason(holding: &Holding) -> String {
    match holding {
        Holding::RunAt { at } => format!("waiting for its run_at, {}", time(*at)),
        Holding::RetryBackoff { at, attempt } => {
            format!("attempt {attempt} failed; the retry is due {}", time(*at))
        }
        Holding::Parents { waiting_on } if waiting_on.is_empty() => {
            "waiting for its flow to decide it".to_owned()
        }
        Holding::Parents { waiting_on } => {
            format!("waiting for its parents {}", waiting_on.join(", "))
        }
        Holding::Suspended {
            waitpoints,
            condition,
            timeout_at,
        } => {
            let condition = serde_json::to_value(condition)
                .ok()
                .and_then(|v| v["kind"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let timeout = timeout_at
                .map(|at| format!(", timing out {}", time(at)))
                .unwrap_or_default();
            format!(
                "suspended until {condition} of {} is signalled{timeout}",
                waitpoints.join(", ")
            )
        }
        Holding::Limited { held } => match held {
            Held::Concurrency {
                key,
                running,
                limit,
            } => format!("held by concurrency key {key}: {running} of {limit} running"),
            Held::Rate { key, next_at } => {
                format!(
                    "held by rate key {key}: the next token comes {}",
                    time(*next_at)
                )
            }
            Held::Budget { policy, dimensions } => format!(
                "held by budget {policy}: over its hard limit in {}",
                dimensions.join(", ")
            ),
        },
        Holding::Queued {
            ahead,
            capabilities,
        } => {
            let needs = if capabilities.is_empty() {
                String::new()
            } else {
                format!("; a worker must advertise {}", capabilities.join(", "))
            };
            format!("claimable, about {ahead} ahead of it in its lane{needs}")
        }
        Holding::Running {
            worker_id,
            lease_until,
        } => format!(
            "running on {}{}",
            worker_id.as_deref().unwrap_or("a worker"),
            lease_until
                .map(|at| format!(", lease until {}", time(at)))
                .unwrap_or_default()
        ),
        Holding::Finished { outcome } => format!("it has ended: {outcome}"),
    }
}
