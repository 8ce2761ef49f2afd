//! The HTTP/1.1 server loop, with the limits one client must not be able to exhaust:
//!
//! - at most `max_connections` connections at once. When a new one arrives at the cap, a
//!   connection waiting for a request is closed to make room: the oldest of those that never
//!   sent a byte, else the keep-alive one idle the longest, else the one whose head stalled the
//!   longest (no byte for `STALLED_HEAD`). Only when every connection is in the middle of a
//!   request do new ones wait in the kernel's accept queue. So sockets that stay silent, or
//!   send a byte and then nothing, cannot lock other clients out: they are the first to go;
//! - a request head must be complete within `header_read_timeout`: counted from the accept
//!   for a new connection (whether it sent part of a head or nothing), from the first byte
//!   for the next request of a kept-alive one; and within `max_header_bytes` (431 past it);
//! - a keep-alive connection with no request for `idle_timeout` is closed (set it above the load
//!   balancer's own idle timeout, so that the balancer, not the instance, closes idle ones);
//! - an accept error (out of file descriptors) pauses accepting for a moment instead of
//!   spinning on it;
//! - the few answers hyper writes by itself, for requests it cannot parse (400, 414, 431 with
//!   an empty body), are rewritten into the API's JSON error shape on their way out.
//!
//! hyper's own `header_read_timeout` starts whenever a connection waits for a request, so it
//! would also be the idle timeout; a watchdog per connection keeps the two apart.

use std::{
    collections::HashMap,
    future::Future,
    os::fd::{AsRawFd, BorrowedFd, RawFd},
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    task::{ready, Context, Poll},
    time::Duration,
};

use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::Notify,
    time::Instant,
};

use super::{config::HttpConfig, router::Api};
use crate::lifecycle::Lifecycle;

/// A head still incomplete this long after its first bytes is stalled: a client sends a head
/// in one or two packets, milliseconds apart. At the cap such a connection may be closed to
/// make room (one byte sent and nothing after kept 600 connections "mid-request" for the whole
/// head timeout, and every new client waiting).
const STALLED_HEAD: Duration = Duration::from_secs(1);

/// How long accepting pauses after an accept error (typically: out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `stop` resolves; then stops accepting and lets every
/// connection finish its request in flight (the caller bounds how long that may take).
///
/// While `lifecycle` drains (from the stop signal until `stop` resolves), every answer carries
/// `Connection: close` and hyper closes its connection after it: a client then opens its next
/// request on a new connection (to another instance, once the load balancer saw readiness turn
/// 503), instead of sending it on a kept-alive one just as the listener closes.
pub(crate) async fn serve(
    listener: TcpListener,
    api: Api,
    config: &HttpConfig,
    lifecycle: Lifecycle,
    stop: impl Future<Output = ()>,
) {
    let connections = Arc::new(Connections::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The watchdog below enforces the head and idle timeouts.
        .header_read_timeout(None)
        // Room for a head of twice the configured cap, so that heads between the two get the
        // API's JSON 431 (`edge::Edge`) and only larger ones hyper's own 431.
        .max_buf_size((2 * config.max_header_bytes).max(8192));
    let limits = Limits {
        header_read_timeout: config.header_read_timeout,
        idle_timeout: config.idle_timeout,
    };
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed; pausing accepts");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        tokio::select! {
            () = &mut stop => break,
            () = connections.make_room() => {}
        }
        let _ = stream.set_nodelay(true);
        let (id, activity) = connections.open(stream.as_raw_fd());
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
            replacement: None,
        });
        let service = hyper::service::service_fn({
            let api = api.clone();
            let activity = activity.clone();
            let lifecycle = lifecycle.clone();
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                let api = api.clone();
                let activity = activity.clone();
                let lifecycle = lifecycle.clone();
                // The client's address, for what is counted per client (`rate_limits`).
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                async move {
                    activity.enter(Phase::Busy);
                    let mut response = api.answer(request.map(axum::body::Body::new)).await;
                    if lifecycle.is_draining() {
                        response.headers_mut().insert(
                            hyper::header::CONNECTION,
                            hyper::header::HeaderValue::from_static("close"),
                        );
                    }
                    activity.answering();
                    Ok::<_, std::convert::Infallible>(response)
                }
            }
        });
        let connection = graceful.watch(builder.serve_connection(io, service));
        let connections = connections.clone();
        tokio::spawn(async move {
            let watchdog = limits.watch(&activity);
            tokio::pin!(connection, watchdog);
            tokio::select! {
                _ = &mut connection => {}
                () = &mut watchdog => {}
            }
            // Unregistered before the socket closes (with `connection`, at the end of this
            // block): `Connections` may look at the socket while it is registered.
            connections.close(id);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The open connections, for the cap and for choosing which one to close to make room.
struct Connections {
    cap: usize,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
    /// Connections open and not yet told to close.
    counted: AtomicUsize,
    next_id: AtomicU64,
    /// Rung when a connection closes, or, while the accept loop waits at the cap, when one
    /// turns idle.
    room: Arc<Notify>,
    /// Set while the accept loop waits for room, so that requests ending meanwhile ring `room`
    /// (and requests pay nothing for it otherwise).
    waiting: Arc<AtomicBool>,
}

impl Connections {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            open: Mutex::new(HashMap::new()),
            counted: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            room: Arc::new(Notify::new()),
            waiting: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Returns once one more connection fits under the cap: at once below it; at the cap after
    /// closing the connection that has waited longest for a request; when every connection is
    /// in the middle of a request, once one ends or turns idle, or a head stalls (looked at
    /// again every quarter of `STALLED_HEAD`: nothing rings when a head merely stops).
    async fn make_room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Set before looking, so that a connection turning idle meanwhile rings `room`.
            self.waiting.store(true, Ordering::Release);
            if self.counted.load(Ordering::Acquire) < self.cap || self.close_longest_waiting() {
                self.waiting.store(false, Ordering::Release);
                return;
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(STALLED_HEAD / 4) => {}
            }
        }
    }

    /// Tells a connection waiting for a request to close: one that never sent a byte first
    /// (the oldest of them), else the keep-alive one idle the longest, else the one stalled
    /// inside its head the longest (for `STALLED_HEAD` or more); false when every connection is
    /// in the middle of a request. A client that has been served before is kept over sockets
    /// that have sent nothing.
    fn close_longest_waiting(&self) -> bool {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        // A connection the server has not read from yet may have a request waiting in its
        // socket (its task not scheduled yet, on a busy machine): only one with nothing to read
        // is silent. Sockets are looked at in order, until the first silent one.
        let mut waiting: Vec<((u8, Instant), &Arc<Activity>)> = open
            .values()
            .filter(|activity| !activity.is_closing())
            .filter_map(|activity| match activity.current() {
                (Phase::Fresh, since) => Some(((0, since), activity)),
                (Phase::Idle, since) if !activity.is_answering() => Some(((1, since), activity)),
                (Phase::ReadingHead, since) if since.elapsed() >= STALLED_HEAD => {
                    Some(((2, since), activity))
                }
                _ => None,
            })
            .collect();
        waiting.sort_unstable_by_key(|(rank, _)| *rank);
        let longest = waiting
            .into_iter()
            .find(|((kind, _), activity)| *kind != 0 || activity.socket_is_silent());
        match longest {
            Some((_, activity)) => {
                activity.close();
                self.counted.fetch_sub(1, Ordering::AcqRel);
                true
            }
            None => false,
        }
    }

    /// Registers a connection on `socket`, which must stay open until `close` is called for it.
    fn open(&self, socket: RawFd) -> (u64, Arc<Activity>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new(
            socket,
            self.room.clone(),
            self.waiting.clone(),
        ));
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, activity.clone());
        self.counted.fetch_add(1, Ordering::AcqRel);
        (id, activity)
    }

    fn close(&self, id: u64) {
        let removed = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        // A connection told to close was uncounted then.
        if removed.is_some_and(|activity| !activity.is_closing()) {
            self.counted.fetch_sub(1, Ordering::AcqRel);
        }
        self.room.notify_waiters();
    }
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
    ///
    /// Phases change twice or three times per request, and waking the watchdog each time cost
    /// a task wake-up (often another worker thread's) per change. So phases change silently,
    /// and the watchdog looks at the connection at its current phase's deadline, and at least
    /// once every `min(head timeout, idle timeout)`: a phase that began after one look has a
    /// deadline no earlier than the next look, so none is missed and none is enforced late.
    async fn watch(self, activity: &Activity) {
        let look_every = self.header_read_timeout.min(self.idle_timeout);
        loop {
            // Registered before the state is read, so that a close between the two is not
            // missed.
            let closing = activity.closing_changed.notified();
            tokio::pin!(closing);
            closing.as_mut().enable();
            let (phase, since) = activity.current();
            // Told to close while waiting for a request; a request that began meanwhile is
            // answered first.
            if activity.is_closing() && phase != Phase::Busy && !activity.is_answering() {
                tracing::debug!("closing a waiting connection to make room for a new one");
                return;
            }
            let deadline = match phase {
                Phase::Idle => Some(since + self.idle_timeout),
                Phase::Fresh | Phase::ReadingHead => Some(since + self.header_read_timeout),
                Phase::Busy => None,
            };
            let now = Instant::now();
            if deadline.is_some_and(|deadline| deadline <= now) {
                tracing::debug!(?phase, "closing a connection past its timeout");
                return;
            }
            let next_look = deadline.map_or(now + look_every, |d| d.min(now + look_every));
            tokio::select! {
                () = tokio::time::sleep_until(next_look) => {}
                () = closing => {}
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Accepted, nothing received yet: the head read timeout runs from the accept.
    Fresh = 0,
    /// Between two requests of a kept-alive connection: the idle timeout runs.
    Idle = 1,
    /// Bytes of a request head arrived; the head read timeout runs (from the accept, for the
    /// first request).
    ReadingHead = 2,
    /// A request is being handled: its own timeout bounds it.
    Busy = 3,
}

/// The phase of one connection and when it began, in one word (so that no reader sees a phase
/// with another phase's start): the start in milliseconds from `Activity::origin`, shifted
/// left by two bits, with the phase in the low two bits.
#[derive(Clone, Copy, PartialEq, Eq)]
struct State(u64);

impl State {
    fn new(phase: Phase, since_ms: u64) -> Self {
        Self(since_ms << 2 | phase as u64)
    }

    fn phase(self) -> Phase {
        match self.0 & 0b11 {
            0 => Phase::Fresh,
            1 => Phase::Idle,
            2 => Phase::ReadingHead,
            _ => Phase::Busy,
        }
    }

    fn since_ms(self) -> u64 {
        self.0 >> 2
    }
}

/// The phase of one connection and when it began, shared by its reader, its service, its
/// watchdog and the accept loop (which may tell it to close).
struct Activity {
    /// The connection's socket, open for as long as the connection is registered.
    socket: RawFd,
    /// A `State`.
    state: AtomicU64,
    origin: Instant,
    /// Rung when the connection is told to close, and after that at every change of phase
    /// (the watchdog then waits for the request in progress to end).
    closing_changed: Notify,
    /// Told to close, to make room for a new connection.
    closing: AtomicBool,
    /// An answer of the API is written but not yet flushed (`answering`, `on_flushed`).
    answer_pending: AtomicBool,
    /// The accept loop's `Connections::room` and whether it waits on it.
    room: Arc<Notify>,
    room_wanted: Arc<AtomicBool>,
}

impl Activity {
    fn new(socket: RawFd, room: Arc<Notify>, room_wanted: Arc<AtomicBool>) -> Self {
        Self {
            socket,
            state: AtomicU64::new(State::new(Phase::Fresh, 0).0),
            origin: Instant::now(),
            closing_changed: Notify::new(),
            closing: AtomicBool::new(false),
            answer_pending: AtomicBool::new(false),
            room,
            room_wanted,
        }
    }

    fn state(&self) -> State {
        State(self.state.load(Ordering::SeqCst))
    }

    fn current(&self) -> (Phase, Instant) {
        let state = self.state();
        (
            state.phase(),
            self.origin + Duration::from_millis(state.since_ms()),
        )
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Enters `phase`. Only a connection told to close wakes its watchdog for it.
    fn enter(&self, phase: Phase) {
        // A busy phase has no deadline, so its start is not worth a look at the clock.
        let since_ms = if phase == Phase::Busy {
            self.state().since_ms()
        } else {
            self.now_ms()
        };
        self.state
            .store(State::new(phase, since_ms).0, Ordering::SeqCst);
        // Sequentially consistent with `close`: either this sees the flag, or the watchdog
        // woken by `close` sees this phase.
        if self.is_closing() {
            self.closing_changed.notify_waiters();
        }
    }

    /// The first bytes of a connection, or after an idle phase, start a request head. A new
    /// connection keeps its start: its whole first head must arrive within the head timeout
    /// of the accept.
    fn on_read(&self) {
        let state = self.state();
        let reading = match state.phase() {
            Phase::Fresh => State::new(Phase::ReadingHead, state.since_ms()),
            Phase::Idle => State::new(Phase::ReadingHead, self.now_ms()),
            Phase::ReadingHead | Phase::Busy => return,
        };
        // Lost only to a change by the service, which then knows better.
        let _ = self
            .state
            .compare_exchange(state.0, reading.0, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The handler has answered: the connection is idle, but its answer is not written yet.
    /// Flagged rather than a phase of its own, so that the watchdog need not look at it.
    fn answering(&self) {
        self.answer_pending.store(true, Ordering::Release);
        self.enter(Phase::Idle);
    }

    /// hyper flushes the connection after writing an answer.
    fn on_flushed(&self) {
        if !self.answer_pending.load(Ordering::Relaxed) {
            return;
        }
        self.answer_pending.store(false, Ordering::SeqCst);
        // Only in the rare cases where someone waits for this: a watchdog told to close the
        // connection once its answer is out, an accept loop waiting for room.
        if self.is_closing() {
            self.closing_changed.notify_waiters();
        }
        if self.room_wanted.load(Ordering::Acquire) {
            self.room.notify_waiters();
        }
    }

    /// Whether an answer of the API is being written (closing now would lose it).
    fn is_answering(&self) -> bool {
        self.answer_pending.load(Ordering::SeqCst)
    }

    fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.closing_changed.notify_waiters();
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Whether the socket has nothing to read: no byte of a request, no end of file. Called
    /// only while the connection is registered (under the `Connections` lock), when its socket
    /// is still open.
    fn socket_is_silent(&self) -> bool {
        // SAFETY: the connection's task unregisters it before its socket closes, and the
        // caller holds the lock that unregistering takes, so the descriptor is open and is this
        // connection's for the whole call.
        let socket = unsafe { BorrowedFd::borrow_raw(self.socket) };
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
        // The socket is non-blocking (tokio's): no data is WouldBlock.
        matches!(
            socket2::SockRef::from(&socket).peek(&mut byte),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock
        )
    }
}

/// A socket that tells its connection's `Activity` when bytes arrive, and puts hyper's own
/// error answers into the API's JSON shape.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    /// The JSON answer that replaces one of hyper's, and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
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

impl<S: AsyncWrite + Unpin> Watched<S> {
    /// Writes what is left of a replacement answer; ready once all of it is written.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while let Some((bytes, written)) = &mut self.replacement {
            if *written == bytes.len() {
                self.replacement = None;
                break;
            }
            let n = ready!(std::pin::Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }

    /// When `head` is one of hyper's own error answers, takes the JSON one in its place and
    /// starts writing it; hyper is told its bytes were written.
    fn replace_hyper_answer(&mut self, cx: &mut Context<'_>, head: &[u8]) -> bool {
        // The API's own answers are written while the connection is responding: only look at
        // what hyper writes by itself (no request in progress), not at every answer.
        if self.activity.is_answering() {
            return false;
        }
        let Some(json) = hyper_answer_as_json(head) else {
            return false;
        };
        self.replacement = Some((json, 0));
        // Whatever is not written now is written by the next write, flush or shutdown.
        if let Poll::Ready(Err(error)) = self.poll_replacement(cx) {
            tracing::debug!(%error, "writing a JSON answer to an unparsable request failed");
            self.replacement = None;
        }
        true
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        ready!(self.poll_replacement(cx))?;
        if self.replace_hyper_answer(cx, buf) {
            return Poll::Ready(Ok(buf.len()));
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        ready!(std::pin::Pin::new(&mut self.inner).poll_flush(cx))?;
        self.activity.on_flushed();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        ready!(self.poll_replacement(cx))?;
        let first = bufs.iter().find(|buf| !buf.is_empty());
        if first.is_some_and(|head| self.replace_hyper_answer(cx, head)) {
            return Poll::Ready(Ok(bufs.iter().map(|buf| buf.len()).sum()));
        }
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// hyper answers a request it cannot parse by itself, before any handler runs: a 4xx status
/// with `content-length: 0` (every 4xx of the API has a JSON body, so nothing else looks like
/// this). Returns the API's JSON answer for it, which also closes the connection.
fn hyper_answer_as_json(head: &[u8]) -> Option<Vec<u8>> {
    let status_line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let status_line = std::str::from_utf8(&head[..status_line_end]).ok()?;
    let (version, rest) = status_line.split_once(' ')?;
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") || !rest.starts_with('4') {
        return None;
    }
    let headers_end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let headers = String::from_utf8_lossy(&head[status_line_end..headers_end]).to_lowercase();
    if !headers.contains("\r\ncontent-length: 0") {
        return None;
    }
    let status = rest.get(..3)?;
    let (code, message) = match status {
        "431" => (
            "header_too_large",
            "the request's head is far larger than this server accepts",
        ),
        "414" => ("uri_too_long", "the request target is too long"),
        _ => (
            "bad_request",
            "the request is not valid HTTP/1.1 (its request line, a header, or its framing: \
             conflicting or invalid Content-Length, obsolete line folding, too many headers)",
        ),
    };
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    Some(
        format!(
            "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_answers_become_json_and_the_api_own_answers_pass_through() {
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let replaced = String::from_utf8(hyper_answer_as_json(hyper_400).unwrap()).unwrap();
        assert!(
            replaced.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{replaced}"
        );
        let body = replaced.split("\r\n\r\n").nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"], "bad_request");
        assert!(replaced.contains(&format!("content-length: {}\r\n", body.len())));

        let hyper_431 =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert!(String::from_utf8(hyper_answer_as_json(hyper_431).unwrap())
            .unwrap()
            .contains("header_too_large"));

        for own in [
            &b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 52\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"{\"error\": \"HTTP/1.1 400\"}",
        ] {
            assert_eq!(hyper_answer_as_json(own), None);
        }
    }
}
