//! Backend outages seen through `ff serve`: the test's own database server
//! is killed mid-run and brought back. While it is away every request
//! answers 503 with `Retry-After` within [`BOUND`] and `/readyz` says 503;
//! within [`RESUME`] of its return the server serves again; nothing
//! acknowledged is lost and nothing completes twice. And a backend that is
//! unreachable at start-up fails `ff serve` and `ff demo` within seconds.
//!
//! The outage tests run where the matching `FF_TEST_*_URL` says the
//! server's binaries are available (skipped loudly otherwise).

mod common;
mod outage_support;
mod serve_support;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use outage_support::{OneNode, Postgres, Redis, RedisCluster, Throwaway};
use serve_support::Server;

/// The longest a request may take to fail while the backend is away.
const BOUND: Duration = Duration::from_secs(2);

/// The longest the server may take to serve again once the backend is back.
const RESUME: Duration = Duration::from_secs(2);

/// How long the backend stays away.
const OUTAGE: Duration = Duration::from_secs(3);

const JOBS: usize = 30;

mod valkey {
    use super::{outage, Down, Redis};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outage_answers_503_then_resumes() {
        if ff_testkit::harness::server_url("FF_TEST_REDIS_URL").is_none() {
            return;
        }
        let mut redis = Redis::start();
        outage(&mut redis, "redis", Down::Wholly).await;
    }
}

mod valkey_cluster {
    use super::{outage, Down, OneNode, RedisCluster};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outage_answers_503_then_resumes() {
        if ff_testkit::harness::server_url("FF_TEST_REDIS_CLUSTER_URL").is_none() {
            return;
        }
        let mut cluster = RedisCluster::start();
        outage(&mut cluster, "redis cluster", Down::Wholly).await;
    }

    /// With one master of three away, what its partitions hold answers 503
    /// and the rest is served.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_outage_answers_503_then_resumes() {
        if ff_testkit::harness::server_url("FF_TEST_REDIS_CLUSTER_URL").is_none() {
            return;
        }
        let mut cluster = RedisCluster::start();
        let mut node = OneNode {
            cluster: &mut cluster,
            node: 1,
        };
        outage(&mut node, "redis cluster node", Down::Partly).await;
    }
}

mod postgres {
    use super::{outage, Down, Postgres};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outage_answers_503_then_resumes() {
        if ff_testkit::harness::server_url("FF_TEST_POSTGRES_URL").is_none() {
            return;
        }
        let mut pg = Postgres::start();
        outage(&mut pg, "postgres", Down::Wholly).await;
    }
}

/// `ff serve` and `ff demo` on a port nothing listens on exit with an
/// error naming the connection, at once rather than after the driver's
/// minutes of retries.
#[test]
fn unreachable_redis_at_start_fails_fast() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let scratch = common::Scratch::new("unreachable");
    for url in [
        format!("redis://127.0.0.1:{port}"),
        format!("redis+cluster://127.0.0.1:{port}"),
    ] {
        for args in [
            vec!["serve", "--listen", "127.0.0.1:0"],
            vec!["demo", "--count", "10", "--quiet"],
        ] {
            let started = Instant::now();
            let mut child = Command::new(env!("CARGO_BIN_EXE_ff"))
                .args(&args)
                .args(["--db", &url])
                .env_remove("FF_DATABASE_URL")
                .current_dir(&scratch.0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start ff");
            let status = loop {
                if let Some(status) = child.try_wait().expect("poll ff") {
                    break status;
                }
                if started.elapsed() > Duration::from_secs(10) {
                    let _ = child.kill();
                    panic!("`ff {}` on {url} still runs after 10 s", args[0]);
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let output = child.wait_with_output().expect("ff output");
            let stderr = String::from_utf8_lossy(&output.stderr);
            let took = started.elapsed();
            eprintln!("ff {} on {url}: failed in {took:?}", args[0]);
            assert!(!status.success(), "`ff {}` on {url} succeeded", args[0]);
            assert!(
                took < Duration::from_secs(5),
                "`ff {}` on {url} took {took:?} to fail",
                args[0]
            );
            assert!(
                stderr.contains("connect"),
                "`ff {}` on {url} says why: {stderr}",
                args[0]
            );
        }
    }
}

/// One answer, timed.
struct Answer {
    status: u16,
    retry_after: bool,
    body: Value,
    took: Duration,
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let started = Instant::now();
    let resp = req
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the server answers");
    let status = resp.status().as_u16();
    let retry_after = resp.headers().contains_key("retry-after");
    let text = resp.text().await.unwrap_or_default();
    Answer {
        status,
        retry_after,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        took: started.elapsed(),
    }
}

/// The executions the run completed, as acknowledged: id → result, and
/// the attempt that completed it.
#[derive(Default)]
struct Acks {
    completed: HashMap<String, Value>,
    by: HashMap<String, Value>,
}

impl Acks {
    /// A completion answered 200. The same handle again is a replay, which
    /// answers as the first time; another attempt's would be a second
    /// completion.
    fn record(&mut self, handle: &Value, result: Value) {
        let id = handle["execution_id"]
            .as_str()
            .expect("a handle names its execution");
        match self.by.get(id) {
            Some(attempt) => assert_eq!(
                attempt, &handle["attempt"],
                "{id} was acknowledged completed by two attempts"
            ),
            None => {
                self.by.insert(id.to_owned(), handle["attempt"].clone());
                self.completed.insert(id.to_owned(), result);
            }
        }
    }
}

fn submit_body(i: usize) -> Value {
    json!({"lane": "outage", "kind": "job", "payload": {"i": i}, "lease_ms": 1000})
}

async fn claim(server: &Server, n: u32) -> Answer {
    let body = json!({"lanes": ["outage"], "n": n, "worker_id": "outage", "wait_ms": 0});
    send(server.http.post(server.api("/claims")).json(&body)).await
}

async fn complete(server: &Server, claimed: &Value, acks: &mut Acks) -> Answer {
    let id = claimed["handle"]["execution_id"]
        .as_str()
        .expect("a handle names its execution")
        .to_owned();
    let result = json!({"done": id, "attempt": claimed["handle"]["attempt"]});
    let body = json!({"handle": claimed["handle"], "result": result});
    let answer = send(server.http.post(server.api("/leases/complete")).json(&body)).await;
    if answer.status == 200 {
        acks.record(&claimed["handle"], result);
    }
    answer
}

/// How much of the backend an outage takes away.
#[derive(Clone, Copy, PartialEq)]
enum Down {
    /// Everything: every request answers 503.
    Wholly,
    /// Some partitions: a request answers 503 or is served.
    Partly,
}

async fn outage(backend: &mut dyn Throwaway, label: &str, down: Down) {
    let server = Server::start(Path::new(&backend.url()), None);
    let mut acks = Acks::default();

    let mut submitted = Vec::new();
    for i in 0..JOBS {
        let answer = send(
            server
                .http
                .post(server.api("/executions"))
                .json(&submit_body(i)),
        )
        .await;
        assert_eq!(answer.status, 201, "submit: {}", answer.body);
        submitted.push(answer.body["id"].as_str().expect("an id").to_owned());
    }
    let answer = claim(&server, 10).await;
    assert_eq!(answer.status, 200, "claim: {}", answer.body);
    let claimed = answer.body.as_array().cloned().unwrap_or_default();
    assert_eq!(claimed.len(), 10);
    let (done, held) = claimed.split_at(5);
    for job in done {
        let answer = complete(&server, job, &mut acks).await;
        assert_eq!(answer.status, 200, "complete: {}", answer.body);
    }

    // The backend goes away with five leases held and twenty jobs queued.
    backend.stop();
    let stopped = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut probes = 0;
    let mut refused = 0;
    while stopped.elapsed() < OUTAGE {
        let probed = &held[probes % held.len()]["handle"];
        let requests = [
            (
                "submit",
                server
                    .http
                    .post(server.api("/executions"))
                    .json(&submit_body(999)),
            ),
            (
                "get",
                server
                    .http
                    .get(server.api(&format!("/executions/{}", submitted[0]))),
            ),
            (
                "claim",
                server.http.post(server.api("/claims")).json(
                    &json!({"lanes": ["outage"], "n": 1, "worker_id": "outage", "wait_ms": 0}),
                ),
            ),
            (
                "complete",
                server
                    .http
                    .post(server.api("/leases/complete"))
                    .json(&json!({"handle": probed, "result": null})),
            ),
            ("readyz", server.http.get(server.url("/readyz"))),
        ];
        for (what, req) in requests {
            let answer = send(req).await;
            if answer.status == 503 {
                refused += 1;
                assert!(answer.retry_after, "{label}: {what} 503 has Retry-After");
            } else {
                // Served from the partitions still up: what it
                // acknowledged is kept, so the end checks it too.
                assert!(
                    down == Down::Partly && answer.status < 500,
                    "{label}: {what} during the outage: {} {}",
                    answer.status,
                    answer.body
                );
                match (what, answer.status) {
                    ("submit", 201) => {
                        submitted.push(answer.body["id"].as_str().expect("an id").to_owned())
                    }
                    ("complete", 200) => acks.record(probed, Value::Null),
                    _ => {}
                }
            }
            assert!(
                answer.took < BOUND,
                "{label}: {what} took {:?} to answer 503",
                answer.took
            );
            slowest = slowest.max(answer.took);
        }
        probes += 1;
    }
    eprintln!(
        "{label}: slowest answer during the outage: {slowest:?} ({refused} 503s in {probes} rounds)"
    );
    assert!(
        refused > 0,
        "{label}: nothing was refused during the outage"
    );

    backend.start();
    let back = Instant::now();
    loop {
        let ready = send(server.http.get(server.url("/readyz"))).await;
        // Counts read every partition, so they answer once all are back.
        let counts = send(server.http.get(server.api("/counts"))).await;
        let answer = send(
            server
                .http
                .post(server.api("/executions"))
                .json(&submit_body(JOBS)),
        )
        .await;
        if answer.status == 201 {
            submitted.push(answer.body["id"].as_str().expect("an id").to_owned());
        }
        if ready.status == 200 && counts.status == 200 && answer.status == 201 {
            break;
        }
        assert!(
            back.elapsed() < RESUME,
            "{label}: still {} / {} / {} {:?} {:?} after the backend came back",
            ready.status,
            counts.status,
            answer.status,
            back.elapsed(),
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "{label}: serving again {:?} after the backend came back",
        back.elapsed()
    );

    // The held leases lapsed during the outage: completing with them is
    // refused, or, if the lease survived, acknowledged once.
    for job in held {
        let answer = complete(&server, job, &mut acks).await;
        assert!(
            matches!(answer.status, 200 | 409),
            "{label}: complete with a held lease after the outage: {} {}",
            answer.status,
            answer.body
        );
    }
    drain(&server, &submitted, &mut acks, label).await;

    for id in &submitted {
        let answer = send(server.http.get(server.api(&format!("/executions/{id}")))).await;
        assert_eq!(answer.status, 200, "{label}: get {id}: {}", answer.body);
        assert_eq!(answer.body["state"], "completed", "{label}: {id}");
        assert_eq!(
            Some(&answer.body["result"]),
            acks.completed.get(id),
            "{label}: {id} keeps the acknowledged result"
        );
    }
}

/// Claims and completes until every submitted execution is acknowledged
/// completed; the lapsed leases come back once the engine expires them.
async fn drain(server: &Server, submitted: &[String], acks: &mut Acks, label: &str) {
    let wanted: HashSet<&String> = submitted.iter().collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !wanted.iter().all(|id| acks.completed.contains_key(*id)) {
        assert!(
            Instant::now() < deadline,
            "{label}: the work did not drain after the outage"
        );
        let answer = claim(server, 10).await;
        assert!(
            matches!(answer.status, 200 | 204),
            "{label}: claim after the outage: {} {}",
            answer.status,
            answer.body
        );
        let claimed = answer.body.as_array().cloned().unwrap_or_default();
        if claimed.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for job in &claimed {
            let answer = complete(server, job, acks).await;
            assert_eq!(answer.status, 200, "{label}: complete: {}", answer.body);
        }
    }
}
