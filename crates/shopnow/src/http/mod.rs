//! The HTTP API: state, routes (one module per resource), middleware, errors.
//!
//! `AppState` lives here, in the parent of the route modules, so that routes depend on it and
//! it depends on no route. `router` joins the routes to the middleware stack in one place.

mod auth;
mod error;
mod extract;
mod middleware;
mod openapi;
mod ops;
mod orders;
mod products;
mod server;

use std::time::Duration;

use axum::{extract::DefaultBodyLimit, http::StatusCode, Router};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{PropagateRequestIdLayer, SetRequestIdLayer},
};
use utoipa_swagger_ui::SwaggerUi;

pub use self::middleware::AccessLog;
use self::{
    auth::AdminToken,
    error::{ApiError, ErrorCode},
    middleware::{FastRequestId, Limits, Observe, REQUEST_ID},
};
pub use self::{openapi::openapi_document, server::serve};
use crate::{catalog::Catalog, lifecycle::Lifecycle};

/// Everything a handler may need. Cheap to clone: each field is a handle.
#[derive(Clone)]
pub struct AppState {
    catalog: Catalog,
    admin_token: AdminToken,
    lifecycle: Lifecycle,
}

impl AppState {
    pub fn new(catalog: Catalog, admin_token: Option<&str>, lifecycle: Lifecycle) -> Self {
        Self {
            catalog,
            admin_token: AdminToken::new(admin_token),
            lifecycle,
        }
    }
}

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

/// The routes with their middleware, read from the outside in: request id, access log and
/// metrics, panic catcher, limits (head and target size, the body read within its size and
/// time), the handler's time limit, then the routes.
pub fn router(state: AppState, config: &HttpConfig) -> Router {
    let (api, openapi) = openapi::api().split_for_parts();
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "this route does not accept that method",
            )
        })
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn(middleware::sanitize_request_id))
                .layer(SetRequestIdLayer::new(REQUEST_ID, FastRequestId))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(axum::middleware::from_fn_with_state(
                    Observe {
                        access_log: config.access_log,
                        slow_request: config.slow_request,
                    },
                    middleware::observe,
                ))
                .layer(CatchPanicLayer::custom(|panic| {
                    axum::response::IntoResponse::into_response(ApiError::panicked(panic))
                }))
                .layer(axum::middleware::from_fn_with_state(
                    Limits {
                        max_header_bytes: config.max_header_bytes,
                        body_limit_bytes: config.body_limit_bytes,
                        body_read_timeout: config.body_read_timeout,
                    },
                    middleware::limits,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    config.request_timeout,
                    middleware::time_limit,
                ))
                .layer(DefaultBodyLimit::max(config.body_limit_bytes)),
        )
        .with_state(state)
}
