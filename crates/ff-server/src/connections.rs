//! The accept loop: HTTP/1.1 connections under a cap, each with a
//! header-read timeout and an idle timeout, so clients that connect and
//! send nothing (or stop halfway) cannot hold descriptors until the server
//! stops answering.
//!
//! `axum::serve` has none of these settings, so the loop is hyper's own
//! connection builder driven by a semaphore.

use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::state::ServerConfig;

/// How connections are bounded; see [`ServerConfig`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    max_connections: u32,
    header_read_timeout: Duration,
    idle_timeout: Duration,
}

impl Settings {
    pub(crate) fn new(config: &ServerConfig) -> Self {
        Self {
            max_connections: u32::try_from(config.max_connections.max(1)).unwrap_or(u32::MAX),
            header_read_timeout: config.header_read_timeout,
            // A long-poll claim sends nothing while it waits, so a shorter
            // idle timeout would cut it off.
            idle_timeout: config
                .idle_timeout
                .max(config.max_claim_wait + Duration::from_secs(1)),
        }
    }
}

/// Serves `app` on `listener` until `draining` turns true; then stops
/// accepting, lets every open connection finish its request in flight and
/// waits for them to close.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    settings: Settings,
    draining: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(settings.max_connections as usize));
    let mut stop = pin!(until_draining(draining.clone()));
    loop {
        // At the cap, further connections wait in the kernel's backlog,
        // holding no descriptor of ours, until one closes.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut stop => break,
        };
        let Ok(slot) = slot else { break };
        let stream = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        match stream {
            Ok((stream, _)) => {
                tokio::spawn(serve_one(
                    stream,
                    app.clone(),
                    settings,
                    draining.clone(),
                    slot,
                ));
            }
            Err(err) if is_transient(&err) => {}
            Err(err) => {
                // Out of descriptors or memory: wait instead of spinning.
                tracing::error!(error = %err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    drop(listener);
    // Every connection holds a slot until it closes.
    let _all = slots.acquire_many(settings.max_connections).await;
}

fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// Resolves once `draining` is true, or its sender is gone.
async fn until_draining(mut draining: watch::Receiver<bool>) {
    while !*draining.borrow_and_update() {
        if draining.changed().await.is_err() {
            return;
        }
    }
}

async fn serve_one(
    stream: TcpStream,
    app: Router,
    settings: Settings,
    draining: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let mut builder = http1::Builder::new();
    // hyper starts the header clock when it waits for a request, so this
    // also closes a kept-alive connection left idle that long.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    let mut conn = pin!(builder.serve_connection(io, TowerToHyperService::new(app)));
    let mut stop = pin!(until_draining(draining));
    let mut stopping = false;
    loop {
        let quiet_left = settings.idle_timeout.saturating_sub(activity.idle_for());
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(err) = served {
                    tracing::debug!(error = %err, "connection ended");
                }
                return;
            }
            () = &mut stop, if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep(quiet_left) => {
                if activity.idle_for() >= settings.idle_timeout {
                    tracing::debug!("closing a connection on which nothing moved");
                    return;
                }
            }
        }
    }
}

/// When a connection last read or wrote a byte.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }
}

/// A stream that records its activity.
#[derive(Debug)]
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
