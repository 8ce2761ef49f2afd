//! The HTTP/1.1 server loop, with the limits one client must not be able to exhaust:
//!
//! - at most `max_connections` connections at once: past that, new ones wait in the kernel's
//!   accept queue while the open ones are served (and file descriptors never run out);
//! - a request head must arrive within `header_read_timeout` of its first byte (a client
//!   trickling headers is cut off), and within `max_header_bytes` (hyper answers 431 past it);
//! - a keep-alive connection with no request for `idle_timeout` is closed (set it above the load
//!   balancer's own idle timeout, so that the balancer, not the instance, closes idle ones);
//! - an accept error (out of file descriptors) pauses accepting for a moment instead of
//!   spinning on it.
//!
//! hyper's own `header_read_timeout` starts whenever a connection waits for a request, so it
//! would also be the idle timeout; a watchdog per connection keeps the two apart.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicU64, AtomicU8, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::Router;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::Semaphore,
    time::Instant,
};
use tower::ServiceExt;

use super::HttpConfig;

/// How long accepting pauses after an accept error (typically: out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `stop` resolves; then stops accepting and lets every
/// connection finish its request in flight (the caller bounds how long that may take).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &HttpConfig,
    stop: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The watchdog below enforces the head and idle timeouts.
        .header_read_timeout(None)
        // Room for a head of twice the configured cap, so that heads between the two get the
        // API's JSON 431 (`middleware::limits`) and only larger ones hyper's bare 431.
        .max_buf_size((2 * config.max_header_bytes).max(8192));
    let limits = Limits {
        header_read_timeout: config.header_read_timeout,
        idle_timeout: config.idle_timeout,
    };
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            () = &mut stop => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed; pausing accepts");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
        });
        let service = hyper::service::service_fn({
            let router = router.clone();
            let activity = activity.clone();
            move |request: hyper::Request<hyper::body::Incoming>| {
                let router = router.clone();
                let activity = activity.clone();
                async move {
                    activity.enter(Phase::Busy);
                    let response = router.oneshot(request.map(axum::body::Body::new)).await;
                    activity.enter(Phase::Idle);
                    response
                }
            }
        });
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                () = limits.watch(&activity) => {}
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The two timeouts the watchdog enforces.
#[derive(Clone, Copy)]
struct Limits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
}

impl Limits {
    /// Resolves when the connection has waited too long in its phase: the connection is then
    /// dropped (closed). A busy connection is never cut here: the request timeout bounds it.
    async fn watch(self, activity: &Activity) {
        loop {
            // Registered before the phase is read, so that no change between the two is missed.
            let changed = activity.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (phase, since) = activity.current();
            let limit = match phase {
                Phase::Idle => self.idle_timeout,
                Phase::ReadingHead => self.header_read_timeout,
                Phase::Busy => {
                    changed.await;
                    continue;
                }
            };
            tokio::select! {
                () = tokio::time::sleep_until(since + limit) => {
                    if activity.current() == (phase, since) {
                        tracing::debug!(?phase, ?limit, "closing a connection past its timeout");
                        return;
                    }
                }
                () = changed => {}
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Between requests (or before the first): the idle timeout runs.
    Idle = 0,
    /// Bytes of a request head arrived; the head read timeout runs.
    ReadingHead = 1,
    /// A request is being handled: its own timeout bounds it.
    Busy = 2,
}

/// The phase of one connection and when it began, shared by its reader, its service and its
/// watchdog.
struct Activity {
    phase: AtomicU8,
    /// Milliseconds from `origin` to the start of the phase.
    since_ms: AtomicU64,
    origin: Instant,
    changed: tokio::sync::Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            phase: AtomicU8::new(Phase::Idle as u8),
            since_ms: AtomicU64::new(0),
            origin: Instant::now(),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn current(&self) -> (Phase, Instant) {
        let phase = match self.phase.load(Ordering::Acquire) {
            0 => Phase::Idle,
            1 => Phase::ReadingHead,
            _ => Phase::Busy,
        };
        let since = self.origin + Duration::from_millis(self.since_ms.load(Ordering::Acquire));
        (phase, since)
    }

    fn enter(&self, phase: Phase) {
        self.since_ms
            .store(self.origin.elapsed().as_millis() as u64, Ordering::Release);
        self.phase.store(phase as u8, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// The first bytes after an idle phase start a request head.
    fn on_read(&self) {
        if self
            .phase
            .compare_exchange(
                Phase::Idle as u8,
                Phase::ReadingHead as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            self.since_ms
                .store(self.origin.elapsed().as_millis() as u64, Ordering::Release);
            self.changed.notify_waiters();
        }
    }
}

/// A socket that tells its connection's `Activity` when bytes arrive.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
