//! Connections are bounded: a cap on how many are served at once, a
//! header-read timeout that closes connections which send nothing, and an
//! idle timeout for ones that stop halfway. Idle clients never stop the
//! server from answering.

mod support;

use std::time::{Duration, Instant};

use ff_server::ServerConfig;
use support::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn bounded(max_connections: usize, header_read_timeout: Duration) -> ServerConfig {
    ServerConfig {
        max_connections,
        header_read_timeout,
        idle_timeout: Duration::from_millis(500),
        max_claim_wait: Duration::from_millis(100),
        ..ServerConfig::default()
    }
}

/// Waits until the server closes `stream` (EOF or reset); returns when.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

async fn healthz_within(server: &Server, limit: Duration) -> Duration {
    let started = Instant::now();
    let resp = reqwest::Client::new()
        .get(server.url("/healthz"))
        .timeout(limit)
        .send()
        .await
        .expect("/healthz answers in time");
    assert_eq!(resp.status(), 200);
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_cap_do_not_stop_health_checks() {
    let server = Server::with_config(bounded(16, Duration::from_secs(1))).await;
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    let took = healthz_within(&server, Duration::from_secs(8)).await;
    assert!(took < Duration::from_secs(6), "/healthz took {took:?}");
    // Every idle connection is closed by the header-read timeout: the first
    // sixteen after a second, the rest as slots free.
    for (i, stream) in idle.iter_mut().enumerate() {
        assert!(
            closed_within(stream, Duration::from_secs(10))
                .await
                .is_some(),
            "idle connection {i} is still open"
        );
    }
    healthz_within(&server, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_for_a_free_slot() {
    let server = Server::with_config(bounded(4, Duration::from_secs(2))).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The held four close at the idle timeout (1.1 s) and free their slots.
    let took = healthz_within(&server, Duration::from_secs(8)).await;
    assert!(
        took >= Duration::from_millis(800),
        "a fifth connection was served at once ({took:?}): no cap"
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_alive_connections_close_after_the_header_timeout() {
    let server = Server::with_config(bounded(16, Duration::from_millis(700))).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).await.expect("read");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let closed = closed_within(&mut stream, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "the kept-alive connection stayed open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_stalls_midway_is_closed_by_the_idle_timeout() {
    let server = Server::with_config(bounded(16, Duration::from_secs(30))).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(
            b"POST /v1/namespaces/default/executions HTTP/1.1\r\nhost: x\r\n\
              content-type: application/json\r\ncontent-length: 100\r\n\r\n{\"lane\"",
        )
        .await
        .expect("write");
    // The idle timeout is at least max_claim_wait (100 ms) plus a second.
    let closed = closed_within(&mut stream, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "a stalled upload holds its connection");
}
