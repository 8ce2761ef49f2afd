//! The HTTP settings, read by `config` from the environment.

use std::time::Duration;

use super::edge::AccessLog;

/// The HTTP settings (`SHOPNOW_BODY_LIMIT_BYTES`, `SHOPNOW_*_TIMEOUT_MS`, ...).
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Largest request body accepted; larger ones answer 413.
    pub body_limit_bytes: usize,
    /// A request still running after this answers 503 `timeout`.
    pub request_timeout: Duration,
    /// After SIGTERM, how long `/readyz` answers 503 before the listener closes, so that load
    /// balancers stop sending new requests first.
    pub drain_delay: Duration,
    /// Upper bound on waiting for in-flight requests once the listener has closed.
    pub shutdown_timeout: Duration,
    /// Which requests get an access log line.
    pub access_log: AccessLog,
    /// Requests slower than this are logged (under `AccessLog::Errors`).
    pub slow_request: Duration,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Longest time from the first byte of a request head to its end.
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// Largest request head (request line and headers) accepted; larger ones answer 431.
    pub max_header_bytes: usize,
    /// Longest time from the end of a request's head to the end of its body; past it the
    /// request answers 408 and the connection is closed.
    pub body_read_timeout: Duration,
}
