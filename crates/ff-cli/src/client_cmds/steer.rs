//! `ff cancel` and `ff retry`.

use clap::Args;
use ff_core::{EngineError, ExecutionId, FlowId};
use serde_json::json;

use super::failure::Failure;
use super::{print_json, OutputArgs, ServerArgs};

/// Options of the commands that take one id.
#[derive(Debug, Args)]
pub struct IdArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// An execution id (`ff cancel` also takes a flow id).
    id: String,
}

fn parse(args: &IdArgs) -> anyhow::Result<ExecutionId> {
    args.id
        .parse()
        .map_err(|_| Failure::invalid("id", format!("`{}` is not an id", args.id)).into())
}

/// Cancels an execution, or else the flow with that id.
pub async fn cancel(args: IdArgs) -> anyhow::Result<()> {
    let client = args.server.connect()?;
    let id = parse(&args)?;
    match client.cancel(id).await {
        Ok(answer) if args.output.json => print_json(&answer),
        Ok(answer) if answer.changed => {
            println!("cancelled {id}");
            Ok(())
        }
        Ok(answer) => {
            println!("{id} had already ended: {}", answer.outcome);
            Ok(())
        }
        Err(EngineError::NotFound { .. }) => {
            let flow_id = FlowId::from_uuid(*id.as_uuid());
            match client.cancel_flow(flow_id).await {
                Ok(answer) if args.output.json => print_json(&answer),
                Ok(answer) if answer.changed => {
                    println!("cancelled flow {flow_id} and its unfinished nodes");
                    Ok(())
                }
                Ok(answer) => {
                    println!(
                        "flow {flow_id} had already ended: {}",
                        answer.state.as_str()
                    );
                    Ok(())
                }
                Err(EngineError::NotFound { .. }) => Err(Failure::not_found(format!(
                    "no execution or flow {id} in namespace `{}`",
                    args.server.namespace
                ))
                .into()),
                Err(err) => Err(args.server.explain(err)),
            }
        }
        Err(err) => Err(args.server.explain(err)),
    }
}

/// Requeues a failed execution for one more attempt.
pub async fn retry(args: IdArgs) -> anyhow::Result<()> {
    let client = args.server.connect()?;
    let id = parse(&args)?;
    client.requeue(id).await.map_err(|err| {
        let mut failure = args.server.failure(err);
        if failure.code == "conflict" {
            failure.message = format!("cannot retry {id}: {}", failure.message);
        }
        anyhow::Error::from(failure)
    })?;
    if args.output.json {
        return print_json(&json!({ "id": id, "requeued": true }));
    }
    println!("requeued {id}: it is ready for one more attempt");
    Ok(())
}
