//! A Rust worker with `ff-sdk`: a handler for `send` executions on the
//! `emails` lane, one submission, and its result; then an `approve`
//! execution that suspends until it is signalled.
//!
//! ```sh
//! # against a running `ff serve`
//! FF_SERVER=http://127.0.0.1:7878 cargo run -p ff-sdk --example worker
//! # or with the engine embedded, on a SQLite file in a temporary directory
//! cargo run -p ff-sdk --example worker
//! ```
//!
//! The README's SDK snippets are verbatim excerpts of this file (a test
//! checks them), so they always compile.

use std::sync::Arc;
use std::time::Duration;

use ff_backend_sqlite::{SqliteBackend, SqliteConfig};
use ff_sdk::{
    Client, Fail, HandlerError, JobContext, JsonText, Retry, SignalRequest, State, SubmitRequest,
    Suspend, TimeoutPolicy, Worker,
};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct Email {
    to: String,
    subject: String,
}

// A handler returns any serializable result, or a HandlerError: a plain error
// (via `?`) or `Retry` fails the attempt retryably, `Fail` fails for good.
async fn send(ctx: JobContext) -> Result<Value, HandlerError> {
    let email: Email = ctx.payload()?; // a payload of the wrong shape fails for good
    if !email.to.contains('@') {
        return Err(Fail::permanent(format!("not an address: {}", email.to)).into());
    }
    if ctx.attempt() == 1 && email.subject.contains("flaky") {
        return Err(Retry::after(Duration::from_secs(1))
            .because("the mail server is busy")
            .into());
    }
    Ok(json!({ "sent_to": email.to, "attempt": ctx.attempt() }))
}

// Waits for a person: the token goes to them, the lease is released, and
// the same attempt runs again from the top with their signal.
async fn approve(ctx: JobContext) -> Result<Value, HandlerError> {
    if let Some(signal) = ctx.signal("approve") {
        let approval: Value = signal.payload.decode()?;
        return Ok(json!({ "approved_by": approval["by"] }));
    }
    let grant = ctx.waitpoint("approve").await?; // key, expires_at, token
    println!("to approve: POST /v1/signals/{}", grant.token); // e.g. a link in a chat message
    Err(Suspend::on(["approve"])
        .timeout(Duration::from_secs(86_400), TimeoutPolicy::Fail)
        .into())
}

async fn run(client: Client) -> Result<(), Box<dyn std::error::Error>> {
    let worker = Worker::builder(client.clone())
        .lane("emails")
        .concurrency(8)
        .handler("send", send)
        .handler("approve", approve)
        .start()?;

    let payload = json!({ "to": "ada@example.com", "subject": "flaky hello" });
    let request = SubmitRequest::new("emails", "send", JsonText::from_value(&payload));
    let id = client.submit(request).await?.id;
    match client.wait_for_result(id, Duration::from_secs(30)).await? {
        Some(done) => println!(
            "{id}: {} after {} attempt(s), result {:?}",
            done.outcome, done.attempt, done.result
        ),
        None => println!("{id}: still running after 30 s"),
    }

    // The approval: signalled here by id and waitpoint (an operator's
    // call); whoever holds the token can send the same with it alone.
    let request = SubmitRequest::new("emails", "approve", JsonText::null());
    let id = client.submit(request).await?.id;
    while client.get_execution(id).await?.state != State::Suspended {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let approval = SignalRequest::new("approved", JsonText::from_value(&json!({ "by": "ada" })));
    client.signal_waitpoint(id, "approve", &approval).await?;
    if let Some(done) = client.wait_for_result(id, Duration::from_secs(30)).await? {
        println!("{id}: {} with {:?}", done.outcome, done.result);
    }

    worker.shutdown().await; // stops claiming, lets running handlers finish
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(server) = std::env::var("FF_SERVER") {
        let token = std::env::var("FF_API_TOKEN").ok();
        return run(Client::http(server, token)?).await;
    }
    let dir = std::env::temp_dir().join(format!("ff-rust-worker-{}", std::process::id()));
    let backend = Arc::new(SqliteBackend::open(SqliteConfig::new(dir.join("ff.db"))).await?);
    let client = Client::embedded(backend.clone(), backend.clone());
    let outcome = run(client.clone()).await;
    client.shutdown().await; // stops the embedded engine
    backend.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}
