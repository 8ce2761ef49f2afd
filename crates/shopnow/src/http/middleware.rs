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

use super::error::{ApiError, ErrorCode};
use crate::observability;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Makes a UUID v4 request id from a thread-local generator. `MakeRequestUuid` asks the kernel
/// for randomness on every request, a system call that showed in the profile of a cached read.
#[derive(Clone, Copy)]
pub struct FastRequestId;

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
pub struct Observe {
    pub access_log: AccessLog,
    /// A request slower than this is logged under `AccessLog::Errors`.
    pub slow_request: Duration,
}

/// The cause of an internal error, carried from the handler to the access log in the
/// response's extensions, so that one line holds the cause and the request's id.
#[derive(Clone, Debug)]
pub struct InternalCause(pub String);

/// Times every request once: counts it in the metrics (by method, matched route and status)
/// and writes its access line when the policy asks for one. Events logged while the request
/// runs belong to a `request` span at `debug` level, free unless `RUST_LOG` enables it.
pub async fn observe(State(policy): State<Observe>, request: Request, next: Next) -> Response {
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
    if status.is_server_error() {
        tracing::error!(request_id = %id, %method, %uri, status = status.as_u16(), millis, cause, "request failed");
    } else if took >= policy.slow_request {
        tracing::warn!(request_id = %id, %method, %uri, status = status.as_u16(), millis, "slow request");
    } else if policy.access_log == AccessLog::All {
        tracing::info!(request_id = %id, %method, %uri, status = status.as_u16(), millis, "request");
    }
    response
}

/// Answers 503 `timeout` when a request runs longer than the configured limit.
pub async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
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
