//! The middleware of every request: request ids, the access log and metrics, the time limit.

use std::time::{Duration, Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing::Instrument;

use super::error::{ApiError, ErrorCode, InternalCause};
use crate::observability;

pub(super) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Makes a UUID v4 request id from a thread-local generator. `MakeRequestUuid` asks the kernel
/// for randomness on every request, a system call that showed in the profile of a cached read.
#[derive(Clone, Copy)]
pub(super) struct FastRequestId;

impl MakeRequestId for FastRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let value = HeaderValue::from_str(
            id.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
        )
        .ok()?;
        Some(RequestId::new(value))
    }
}

/// Which requests get an access log line (`SHOPNOW_ACCESS_LOG`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessLog {
    /// Server errors (5xx) and requests slower than the slow-request threshold: what an
    /// operator acts on, a few lines a second at most when all is well.
    Errors,
    /// Every request, at `info`. At tens of thousands of requests a second this writes about a
    /// gigabyte of logs a minute and costs a fifth of the throughput (BENCHMARKS.md).
    All,
    /// No access lines at all (errors inside the service are still logged).
    Off,
}

impl std::str::FromStr for AccessLog {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "errors" => Ok(Self::Errors),
            "all" => Ok(Self::All),
            "off" => Ok(Self::Off),
            _ => Err("expected errors, all or off".to_string()),
        }
    }
}

/// What the access log and the metrics need to know.
#[derive(Clone, Copy, Debug)]
pub(super) struct Observe {
    pub access_log: AccessLog,
    /// A request slower than this is logged under `AccessLog::Errors`.
    pub slow_request: Duration,
}

/// Times every request once: counts it in the metrics (by method, matched route and status)
/// and writes its access line when the policy asks for one. Events logged while the request
/// runs belong to a `request` span at `debug` level, free unless `RUST_LOG` enables it.
pub(super) async fn observe(
    State(policy): State<Observe>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let span = tracing::debug_span!("request", %method, uri = %request.uri(), request_id = %id);
    let uri = (policy.access_log != AccessLog::Off).then(|| request.uri().clone());
    let response = next.run(request).instrument(span).await;
    let took = started.elapsed();
    let status = response.status();
    observability::record_request(
        &method,
        route.as_ref().map(MatchedPath::as_str),
        status,
        took,
    );

    let Some(uri) = uri else {
        return response;
    };
    let millis = took.as_secs_f64() * 1000.0;
    let cause = response
        .extensions()
        .get::<InternalCause>()
        .map(|c| c.0.as_str());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // Shedding load or waiting out a dependency: worth watching, not a bug.
        tracing::warn!(request_id = %id, %method, %uri, status = status.as_u16(), millis, cause, "request refused for now");
    } else if status.is_server_error() {
        tracing::error!(request_id = %id, %method, %uri, status = status.as_u16(), millis, cause, "request failed");
    } else if took >= policy.slow_request {
        tracing::warn!(request_id = %id, %method, %uri, status = status.as_u16(), millis, "slow request");
    } else if policy.access_log == AccessLog::All {
        tracing::info!(request_id = %id, %method, %uri, status = status.as_u16(), millis, "request");
    }
    response
}

/// Answers 503 `timeout` when a request runs longer than the configured limit.
pub(super) async fn time_limit(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Timeout,
            format!("the request took longer than {} ms", limit.as_millis()),
        )
        .into_response(),
    }
}

/// Longest request target (path and query) accepted; longer ones answer 414.
pub(super) const MAX_URI_BYTES: usize = 8 * 1024;

/// What `limits` enforces.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub max_header_bytes: usize,
    pub body_limit_bytes: usize,
    /// Longest time from the end of the head to the end of the body.
    pub body_read_timeout: Duration,
}

/// Refuses heads and targets that are too large with the API's JSON errors (431, 414), and reads
/// the whole body (up to the body limit, else 413; within the body read timeout, else 408; a
/// broken chunked encoding or a cut connection 400) before the request goes on: a handler that
/// answers without reading the body (401, 405, 404) then leaves no unread bytes on the
/// connection, which therefore stays alive for the client's next request.
pub(super) async fn limits(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    let head_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if head_bytes > limits.max_header_bytes {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::HeaderTooLarge,
            format!(
                "the request's headers take {head_bytes} bytes; at most {} are accepted",
                limits.max_header_bytes
            ),
        )
        .into_response();
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            ErrorCode::UriTooLong,
            format!("the request target is longer than {MAX_URI_BYTES} bytes"),
        )
        .into_response();
    }
    let (parts, body) = request.into_parts();
    // Most requests (every read) have no body: nothing to wait for, and no timer to set.
    if axum::body::HttpBody::is_end_stream(&body) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let read = tokio::time::timeout(
        limits.body_read_timeout,
        axum::body::to_bytes(body, limits.body_limit_bytes),
    )
    .await;
    let refused = match read {
        Ok(Ok(bytes)) => return next.run(Request::from_parts(parts, bytes.into())).await,
        // The client stopped sending: its fault, not the server's (408, not 503).
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            format!(
                "the request body did not arrive within {} ms",
                limits.body_read_timeout.as_millis()
            ),
        ),
        Ok(Err(error)) if is_too_large(&error) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!(
                "the request body is larger than {} bytes",
                limits.body_limit_bytes
            ),
        ),
        // A chunked body that breaks the framing, or a connection cut mid-body.
        Ok(Err(error)) => ApiError::bad_request(
            ErrorCode::BadRequest,
            format!("the request body could not be read: {error}"),
        ),
    };
    // Whatever is left of the body is still on the connection: close it after this answer.
    let mut response = refused.into_response();
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        HeaderValue::from_static("close"),
    );
    response
}

/// Whether reading a body failed on the size limit (not on the client's framing or connection).
fn is_too_large(error: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = current.source();
    }
    false
}

/// Longest `X-Request-Id` echoed back.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Drops an incoming `X-Request-Id` that is too long or holds anything but letters, digits and
/// `-_.:`, so that the one made for the request instead is what the logs and the response carry.
pub(super) async fn sanitize_request_id(mut request: Request, next: Next) -> Response {
    let acceptable = |id: &HeaderValue| {
        let id = id.as_bytes();
        !id.is_empty()
            && id.len() <= MAX_REQUEST_ID_LEN
            && id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    };
    if request
        .headers()
        .get(REQUEST_ID)
        .is_some_and(|id| !acceptable(id))
    {
        request.headers_mut().remove(REQUEST_ID);
    }
    next.run(request).await
}
