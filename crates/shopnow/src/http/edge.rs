//! The edge of every request, in one service (`Edge`): its request id, the limits of its head
//! and body, its time limit, a panic catcher, then the access log and the metrics.
//!
//! One service rather than a layer for each: every layer of a stack boxes its future and clones
//! the services inside it on every request, and the cached read is short enough for that to
//! show (BENCHMARKS.md, "2026-12-02 (late)").

use std::{
    convert::Infallible,
    future::Future,
    panic::AssertUnwindSafe,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use futures::{future::BoxFuture, FutureExt};
use tower::{Layer, Service, ServiceExt};
use tracing::Instrument;

use super::error::{ApiError, ErrorCode, InternalCause};
use crate::observability;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest `X-Request-Id` echoed back.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Longest request target (path and query) accepted; longer ones answer 414.
const MAX_URI_BYTES: usize = 8 * 1024;

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

/// What the edge enforces and records, from `HttpConfig`.
#[derive(Clone, Copy, Debug)]
pub(super) struct EdgePolicy {
    pub access_log: AccessLog,
    /// A request slower than this is logged under `AccessLog::Errors`.
    pub slow_request: Duration,
    pub max_header_bytes: usize,
    pub body_limit_bytes: usize,
    /// Longest time from the end of the head to the end of the body.
    pub body_read_timeout: Duration,
    /// A request still running after this answers 503 `timeout`.
    pub request_timeout: Duration,
}

impl<S> Layer<S> for EdgePolicy {
    type Service = Edge<S>;

    /// `inner` behind the edge, as a layer of axum's router: the request's route label is the
    /// route the router matched.
    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            policy: *self,
            route: None,
        }
    }
}

impl EdgePolicy {
    /// `inner`, which serves one route only, behind the edge (outside axum's router).
    pub(super) fn serving<S>(self, route: &'static str, inner: S) -> Edge<S> {
        Edge {
            inner,
            policy: self,
            route: Some(route),
        }
    }
}

/// `inner` (a route) behind the edge.
#[derive(Clone)]
pub(super) struct Edge<S> {
    inner: S,
    policy: EdgePolicy,
    /// The route label of every request, for a service that serves one route; else the
    /// route axum's router matched (`MatchedPath`).
    route: Option<&'static str>,
}

/// The route a request is counted under in the metrics.
enum RouteLabel {
    Fixed(&'static str),
    Matched(MatchedPath),
    Unmatched,
}

impl RouteLabel {
    fn as_str(&self) -> Option<&str> {
        match self {
            Self::Fixed(route) => Some(route),
            Self::Matched(route) => Some(route.as_str()),
            Self::Unmatched => None,
        }
    }
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    /// Gives the request an id (the client's, when it is short and plain), runs it within the
    /// limits, and times it once for the metrics and the access log.
    fn call(&mut self, request: Request) -> Self::Future {
        let policy = self.policy;
        let started = Instant::now();
        let id = request_id(request.headers());
        let route = match (self.route, request.extensions().get::<MatchedPath>()) {
            (Some(route), _) => RouteLabel::Fixed(route),
            (None, Some(matched)) => RouteLabel::Matched(matched.clone()),
            (None, None) => RouteLabel::Unmatched,
        };
        let method = request.method().clone();
        let uri = (policy.access_log != AccessLog::Off).then(|| request.uri().clone());
        // Events logged while the request runs belong to this span, free unless `RUST_LOG`
        // enables `debug`.
        let span = tracing::debug_span!("request", %method, uri = %request.uri(),
                                        request_id = id.to_str().unwrap_or_default());
        let work = policy.start(&mut self.inner, request);
        let answered = async move {
            let mut response = match work {
                Work::Answered(response) => response,
                Work::Handler(handler) => policy.finish(handler).await,
                Work::AfterBody(work) => work.await,
            };
            let took = started.elapsed();
            observability::record_request(&method, route.as_str(), response.status(), took);
            if let Some(uri) = uri {
                policy.log(&response, &id, &method, &uri, took);
            }
            response.headers_mut().insert(REQUEST_ID, id);
            Ok(response)
        };
        if span.is_disabled() {
            Box::pin(answered)
        } else {
            Box::pin(answered.instrument(span))
        }
    }
}

/// Where a request stands once the edge has looked at its head.
enum Work<F> {
    /// Refused, or the handler panicked at once.
    Answered(Response),
    /// Handed to the handler (a request without a body: every read).
    Handler(F),
    /// Its body is read first, then the handler runs.
    AfterBody(BoxFuture<'static, Response>),
}

impl EdgePolicy {
    /// Refuses a head past the limits, else hands the request on: at once when it has no body,
    /// after reading its body otherwise. `inner` has been polled ready (`poll_ready`).
    fn start<S>(self, inner: &mut S, request: Request) -> Work<S::Future>
    where
        S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        if let Some(refusal) = self.refuse_head(&request) {
            return Work::Answered(refusal.into_response());
        }
        if axum::body::HttpBody::is_end_stream(request.body()) {
            // No body: nothing to wait for, and no timer to set.
            return match std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(request))) {
                Ok(handler) => Work::Handler(handler),
                Err(panic) => Work::Answered(ApiError::panicked(panic).into_response()),
            };
        }
        let inner = inner.clone();
        Work::AfterBody(Box::pin(async move {
            match self.read_body(request).await {
                Ok(request) => self.finish(inner.oneshot(request)).await,
                Err(refusal) => refusal,
            }
        }))
    }

    /// The handler's answer within the time limit (else 503 `timeout`); a panic is a 500.
    async fn finish(self, handler: impl Future<Output = Result<Response, Infallible>>) -> Response {
        match within(
            self.request_timeout,
            AssertUnwindSafe(handler).catch_unwind(),
        )
        .await
        {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(never))) => match never {},
            Some(Err(panic)) => ApiError::panicked(panic).into_response(),
            None => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Timeout,
                format!(
                    "the request took longer than {} ms",
                    self.request_timeout.as_millis()
                ),
            )
            .into_response(),
        }
    }

    /// Heads and targets that are too large: 431 and 414, with the API's JSON errors.
    fn refuse_head(&self, request: &Request) -> Option<ApiError> {
        let head_bytes: usize = request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if head_bytes > self.max_header_bytes {
            return Some(ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                ErrorCode::HeaderTooLarge,
                format!(
                    "the request's headers take {head_bytes} bytes; at most {} are accepted",
                    self.max_header_bytes
                ),
            ));
        }
        let target = request
            .uri()
            .path_and_query()
            .map_or(0, |p| p.as_str().len());
        (target > MAX_URI_BYTES).then(|| {
            ApiError::new(
                StatusCode::URI_TOO_LONG,
                ErrorCode::UriTooLong,
                format!("the request target is longer than {MAX_URI_BYTES} bytes"),
            )
        })
    }

    /// Reads the whole body (up to the body limit, else 413; within the body read timeout, else
    /// 408; a broken chunked encoding or a cut connection 400) before the request goes on: a
    /// handler that answers without reading the body (401, 405, 404) then leaves no unread
    /// bytes on the connection, which therefore stays alive for the client's next request.
    async fn read_body(self, request: Request) -> Result<Request, Response> {
        let (parts, body) = request.into_parts();
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!(
                    "the request body is larger than {} bytes",
                    self.body_limit_bytes
                ),
            )
        };
        // A declared length over the limit is refused before a byte of the body is waited for
        // (it was 408 after the body read timeout when the client sent less than it declared).
        let declared = parts
            .headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
        let read = match declared {
            Some(length) if length > self.body_limit_bytes as u64 => None,
            _ => Some(
                tokio::time::timeout(
                    self.body_read_timeout,
                    axum::body::to_bytes(body, self.body_limit_bytes),
                )
                .await,
            ),
        };
        let refused = match read {
            None => too_large(),
            Some(Ok(Ok(bytes))) => return Ok(Request::from_parts(parts, bytes.into())),
            // The client stopped sending: its fault, not the server's (408, not 503).
            Some(Err(_)) => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::RequestTimeout,
                format!(
                    "the request body did not arrive within {} ms",
                    self.body_read_timeout.as_millis()
                ),
            ),
            Some(Ok(Err(error))) if is_too_large(&error) => too_large(),
            // A chunked body that breaks the framing, or a connection cut mid-body.
            Some(Ok(Err(error))) => ApiError::bad_request(
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
        Err(response)
    }

    /// The access line, when the policy asks for one.
    fn log(
        &self,
        response: &Response,
        id: &HeaderValue,
        method: &axum::http::Method,
        uri: &axum::http::Uri,
        took: Duration,
    ) {
        let status = response.status();
        let id = id.to_str().unwrap_or_default();
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
        } else if took >= self.slow_request {
            tracing::warn!(request_id = %id, %method, %uri, status = status.as_u16(), millis, "slow request");
        } else if self.access_log == AccessLog::All {
            tracing::info!(request_id = %id, %method, %uri, status = status.as_u16(), millis, "request");
        }
    }
}

/// Runs `work` for at most `limit`; `None` when it took longer. Work that is done at its first
/// poll (a read served from memory) arms no timer.
async fn within<F: Future>(limit: Duration, work: F) -> Option<F::Output> {
    let mut work = std::pin::pin!(work);
    if let Poll::Ready(output) = futures::poll!(work.as_mut()) {
        return Some(output);
    }
    tokio::time::timeout(limit, work).await.ok()
}

/// The request's id: the client's `X-Request-Id` when it is short and holds only letters,
/// digits and `-_.:` (so that it is safe in logs), else a new UUID v4.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    let acceptable = |id: &HeaderValue| {
        let id = id.as_bytes();
        !id.is_empty()
            && id.len() <= MAX_REQUEST_ID_LEN
            && id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    };
    match headers.get(REQUEST_ID) {
        Some(id) if acceptable(id) => id.clone(),
        _ => new_request_id(),
    }
}

/// A UUID v4 from the thread's generator (`Uuid::new_v4` asks the kernel for randomness on
/// every call, a system call that showed in the profile of a cached read).
fn new_request_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut text = uuid::Uuid::encode_buffer();
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::service_fn;

    use super::*;

    fn policy() -> EdgePolicy {
        EdgePolicy {
            access_log: AccessLog::Off,
            slow_request: Duration::from_secs(1),
            max_header_bytes: 8192,
            body_limit_bytes: 1024,
            body_read_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_millis(50),
        }
    }

    async fn answer(response: Response) -> (StatusCode, serde_json::Value) {
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    /// A service whose `call` panics before it returns a future.
    #[derive(Clone)]
    struct PanicsInCall;

    impl Service<Request> for PanicsInCall {
        type Response = Response;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request) -> Self::Future {
            panic!("in call")
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_json_500_and_the_edge_goes_on() {
        let in_future = service_fn(|_: Request| async { panic!("in the future") });
        let response = policy()
            .layer(in_future)
            .oneshot(Request::new(Body::empty()))
            .await
            .unwrap();
        assert!(response.headers().contains_key(REQUEST_ID));
        let (status, body) = answer(response).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"], "internal");

        let response = policy()
            .layer(PanicsInCall)
            .oneshot(Request::new(Body::empty()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);

        // A request with a body takes the other path, through the body read.
        let response = policy()
            .layer(in_future)
            .oneshot(Request::new(Body::from("{}")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn a_handler_past_the_time_limit_answers_503_timeout() {
        let stuck = service_fn(|_: Request| std::future::pending::<Result<Response, Infallible>>());
        for body in [Body::empty(), Body::from("{}")] {
            let response = policy()
                .layer(stuck)
                .oneshot(Request::new(body))
                .await
                .unwrap();
            assert_eq!(response.headers()["retry-after"], "1");
            let (status, body) = answer(response).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(body["error"], "timeout");
        }
    }

    #[test]
    fn work_done_at_its_first_poll_arms_no_timer() {
        // Outside a Tokio runtime, making a timer panics: this passes only if none is made.
        let output = futures::executor::block_on(within(Duration::from_secs(1), async { 7 }));
        assert_eq!(output, Some(7));
    }

    #[test]
    fn request_ids_are_kept_only_when_short_and_plain() {
        let with = |id: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(REQUEST_ID, HeaderValue::from_str(id).unwrap());
            request_id(&headers)
        };
        assert_eq!(with("order-42_a.b:c"), "order-42_a.b:c");
        let long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        for refused in ["", "with space", "quote\"", long.as_str()] {
            let made = with(refused);
            assert_ne!(made, refused);
            assert!(
                uuid::Uuid::parse_str(made.to_str().unwrap()).is_ok(),
                "{made:?}"
            );
        }
        let fresh = request_id(&HeaderMap::new());
        assert_ne!(fresh, request_id(&HeaderMap::new()));
        assert_eq!(
            uuid::Uuid::parse_str(fresh.to_str().unwrap())
                .unwrap()
                .get_version_num(),
            4
        );
    }
}
