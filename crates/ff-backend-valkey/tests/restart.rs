//! Restarts of the server under the backend, on a `redis-server` of the
//! test's own (AOF `everysec`, a temporary directory, a free port):
//! - a graceful restart (`SHUTDOWN`, which writes and syncs the AOF) loses
//!   no acknowledged write, and the backend carries on through it;
//! - after a SIGKILL, every execution still reaches exactly one terminal
//!   state (one outbox entry each); attempts may run again.
//!
//! They need the `redis-server` binary and run where `FF_TEST_REDIS_URL`
//! says a Redis is available (skipped loudly otherwise).

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ff_backend_valkey::{ValkeyBackend, ValkeyConfig};
use futures::StreamExt;

use ff_core::{
    ClaimRequest, CompletionBackend, ExecutionId, ExecutionOps, JsonText, LeaseOps, MaintenanceOps,
    ReadOps, State, SubmitRequest,
};
use ff_testkit::TempDir;

/// A `redis-server` with AOF `everysec` in a directory of its own.
struct Server {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl Server {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            dir: TempDir::new("valkey-restart"),
            port,
            child: None,
        };
        server.spawn();
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (is it installed?)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(client) = redis::Client::open(self.url()) {
                if let Ok(mut conn) = client.get_connection() {
                    let pong: redis::RedisResult<String> = redis::cmd("PING").query(&mut conn);
                    if pong.is_ok() {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server on port {} did not answer", self.port);
    }

    /// `SHUTDOWN`: the server writes and syncs its AOF, then exits.
    fn shutdown(&mut self) {
        if let Ok(mut conn) = redis::Client::open(self.url()).and_then(|c| c.get_connection()) {
            let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query(&mut conn);
        }
        if let Some(mut child) = self.child.take() {
            child.wait().expect("redis-server exits");
        }
    }

    /// SIGKILL: whatever the AOF had not synced is lost.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill redis-server");
            child.wait().expect("reap redis-server");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn available() -> bool {
    ff_testkit::harness::server_url("FF_TEST_REDIS_URL").is_some()
}

async fn connect(url: &str) -> ValkeyBackend {
    ValkeyBackend::connect(ValkeyConfig::new(url).prefix("restart"))
        .await
        .expect("connect")
}

/// Retries `op` while the server is away, for up to 20 s.
async fn retrying<T, F, Fut>(what: &str, op: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, ff_core::EngineError>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match op().await {
            Ok(value) => return value,
            Err(err) if Instant::now() < deadline => {
                eprintln!("{what}: {err}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("{what}: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_loses_no_acknowledged_write() {
    if !available() {
        return;
    }
    let mut server = Server::start();
    let backend = connect(&server.url()).await;
    let reqs = (0..300)
        .map(|i| SubmitRequest::new("restart", "job", JsonText::from_value(&i)))
        .collect();
    let ids: Vec<ExecutionId> = backend
        .submit_batch(reqs)
        .await
        .expect("submit")
        .into_iter()
        .map(|s| s.id)
        .collect();
    let claimed = backend
        .claim(&ClaimRequest::new(["restart"], "w").max(200))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 200);
    for job in &claimed[..100] {
        backend
            .complete(&job.handle, JsonText::parse("\"done\"").expect("json"))
            .await
            .expect("complete");
    }
    let mut before = HashMap::new();
    for id in &ids {
        before.insert(*id, backend.get_execution(*id).await.expect("get"));
    }

    // Opened after the completions were published: what it sees after the
    // restart is what the subscriber reads back once it is listening again.
    let mut stream = backend.subscribe_completions().await.expect("subscribe");

    server.shutdown();
    server.spawn();

    let completed: HashSet<ExecutionId> = claimed[..100]
        .iter()
        .map(|c| c.handle.execution_id)
        .collect();
    let mut read_back = HashSet::new();
    while read_back.len() < completed.len() {
        let payload = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("the undispatched entries are read back after the restart")
            .expect("the stream stays open");
        read_back.insert(payload.execution_id);
    }
    assert_eq!(read_back, completed);

    // The same backend carries on once the server is back.
    for id in &ids {
        let after = retrying("get after restart", || backend.get_execution(*id)).await;
        assert_eq!(
            before[id], after,
            "execution {id} changed across the restart"
        );
    }
    let outbox = backend
        .undispatched_completions(0, 1_000)
        .await
        .expect("outbox");
    assert_eq!(
        outbox.len(),
        100,
        "every acknowledged completion kept its entry"
    );
    for job in &claimed[100..] {
        backend
            .complete(&job.handle, JsonText::null())
            .await
            .expect("complete after restart");
    }
    let rest = backend
        .claim(&ClaimRequest::new(["restart"], "w").max(200))
        .await
        .expect("claim after restart");
    assert_eq!(rest.len(), 100, "the unclaimed ones are still claimable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_leaves_each_execution_one_terminal_state() {
    if !available() {
        return;
    }
    let mut server = Server::start();
    let backend = connect(&server.url()).await;
    let reqs = (0..300)
        .map(|i| SubmitRequest::new("kill", "job", JsonText::from_value(&i)).lease_ms(500))
        .collect();
    let ids: Vec<ExecutionId> = backend
        .submit_batch(reqs)
        .await
        .expect("submit")
        .into_iter()
        .map(|s| s.id)
        .collect();
    // Past one everysec fsync: the submits are on disk.
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let worker = {
        let backend = backend.clone();
        tokio::spawn(async move { work(&backend, 300).await })
    };
    // Kill the server once the workers are well into the run.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done = completed_on(&backend, "kill").await;
        if done >= 50 || Instant::now() > deadline {
            assert!(done > 0, "the kill lands after work began");
            assert!(done < 300, "the kill lands while work remains");
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.spawn();
    worker.await.expect("the worker finishes");

    let outbox = retrying("outbox", || backend.undispatched_completions(0, 10_000)).await;
    let mut entries: HashMap<ExecutionId, usize> = HashMap::new();
    for entry in &outbox {
        *entries.entry(entry.execution_id).or_default() += 1;
    }
    for id in &ids {
        let exec = backend.get_execution(*id).await.expect("get");
        assert_eq!(exec.state, State::Completed, "{id} ends completed");
        assert_eq!(entries.get(id), Some(&1), "{id} has one outbox entry");
    }
}

/// Claims and completes until `total` executions are completed, expiring
/// lapsed leases as the engine would, and riding out the server's absence.
async fn work(backend: &ValkeyBackend, total: u64) {
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the work did not finish"
        );
        let _ = backend.expire_leases(1_000).await;
        let _ = backend.promote_scheduled(1_000).await;
        let claimed = match backend
            .claim_wait(
                &ClaimRequest::new(["kill"], "w").max(20),
                Duration::from_millis(200),
            )
            .await
        {
            Ok(claimed) => claimed,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Some work per batch, so the run is still going when the kill lands.
        tokio::time::sleep(Duration::from_millis(30)).await;
        for job in claimed {
            // Lost to the crash or refused afterwards: the lease expires and
            // the execution runs again.
            let _ = backend.complete(&job.handle, JsonText::null()).await;
        }
        let done = completed_on(backend, "kill").await;
        if done >= total {
            return;
        }
    }
}

/// How many executions of `lane` are completed, 0 while the server is away.
async fn completed_on(backend: &ValkeyBackend, lane: &str) -> u64 {
    backend
        .count_by_lane_and_state("default")
        .await
        .map(|counts| {
            counts
                .iter()
                .filter(|c| c.lane == lane && c.state == State::Completed)
                .map(|c| c.count)
                .sum()
        })
        .unwrap_or(0)
}
