//! Building and running one instance: state, router, middleware, listener.

use std::{future::Future, net::SocketAddr, time::Duration};

use anyhow::Context;
use axum::{
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderName, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Router,
};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    auth::AdminToken,
    cache::{CacheHooks, CacheStrategy, ProductCache},
    catalog::Catalog,
    config::Config,
    db,
    error::error_response,
    lifecycle::{self, Lifecycle},
    observability, relay, routes, sampler,
};

/// Connections each instance keeps to Postgres at most.
const DATABASE_POOL_SIZE: u32 = 16;

/// Everything a handler may need. Cheap to clone: each field is a handle.
#[derive(Clone)]
pub struct AppState {
    pub catalog: Catalog,
    pub admin_token: AdminToken,
    pub lifecycle: Lifecycle,
}

/// A built instance: its listener is bound, so `port()` is known before it serves.
pub struct Application {
    listener: TcpListener,
    router: Router,
    lifecycle: Lifecycle,
    catalog: Catalog,
    config: Config,
}

impl Application {
    /// Connects to Postgres (creating and migrating the database if needed), builds the cache
    /// and binds the listener. Port 0 picks a free port.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_hooks(config, CacheHooks::default()).await
    }

    /// `build`, with test or checker hooks in the cache (never set by configuration).
    pub async fn build_with_hooks(config: Config, hooks: CacheHooks) -> anyhow::Result<Self> {
        // Install the recorder before anything records, so no early sample is lost.
        observability::prometheus();
        let pool = db::connect_and_migrate(&config.database_url, DATABASE_POOL_SIZE).await?;
        let cache = ProductCache::new(&config.cache, &config.redis, hooks)?;
        let lifecycle = Lifecycle::default();
        let catalog = Catalog::new(pool, cache, config.faults);
        let state = AppState {
            catalog: catalog.clone(),
            admin_token: AdminToken::new(config.admin_token.as_deref()),
            lifecycle: lifecycle.clone(),
        };
        let router = router(state, &config);
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding SHOPNOW_LISTEN={}", config.listen))?;
        Ok(Self {
            listener,
            router,
            lifecycle,
            catalog,
            config,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The instance's catalog: the same reads and writes the handlers make.
    pub fn catalog(&self) -> Catalog {
        self.catalog.clone()
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Serves until SIGTERM or SIGINT, then drains.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(lifecycle::termination_signal()).await
    }

    /// Serves until `stop` resolves, then drains: readiness goes to 503 at once, the listener
    /// closes after the drain delay, and in-flight requests get at most the shutdown timeout.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(address = %self.local_addr(), "listening");
        let Self {
            listener,
            router,
            lifecycle,
            catalog,
            config,
        } = self;
        let background = spawn_background_tasks(&catalog, &config);
        let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
        let drain_delay = config.http.drain_delay;
        let graceful = async move {
            stop.await;
            lifecycle.start_draining();
            tracing::info!(?drain_delay, "draining: readiness is now 503");
            tokio::time::sleep(drain_delay).await;
            let _ = draining_tx.send(());
        };
        let server = axum::serve(listener, router).with_graceful_shutdown(graceful);
        let deadline = async move {
            if draining_rx.await.is_ok() {
                tokio::time::sleep(config.http.shutdown_timeout).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = server => result.context("serving HTTP")?,
            () = deadline => tracing::warn!("shutdown timeout: dropping requests still in flight"),
        }
        for task in background {
            task.abort();
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The outbox relay (when the strategy publishes) and the consistency sampler (when the
/// strategy caches and the rate is not 0).
fn spawn_background_tasks(catalog: &Catalog, config: &Config) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if catalog.cache().publishes() {
        tasks.push(tokio::spawn(relay::run(catalog.clone())));
    }
    if config.sampler_rate > 0 && config.cache.strategy != CacheStrategy::None {
        tasks.push(tokio::spawn(sampler::run(
            catalog.clone(),
            config.sampler_rate,
        )));
    }
    tasks
}

/// The router with its middleware, read from the outside in: request id, trace, metrics,
/// panic catcher, timeout, body limit, then the routes.
fn router(state: AppState, config: &Config) -> Router {
    let (api, openapi) = routes::api().split_for_parts();
    let request_id = HeaderName::from_static("x-request-id");
    let request_timeout = config.http.request_timeout;

    api.merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(|| async { error_response(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), FastRequestId))
                .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                    let id = request
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id = %id)
                }).on_response(DefaultOnResponse::new().level(Level::INFO)))
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(middleware::from_fn(observability::track_http_metrics))
                .layer(CatchPanicLayer::custom(|_panic| {
                    error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
                }))
                .layer(middleware::from_fn_with_state(request_timeout, time_limit))
                .layer(DefaultBodyLimit::max(config.http.body_limit_bytes)),
        )
        .with_state(state)
}

/// Makes a UUID v4 request id from a thread-local generator. `MakeRequestUuid` asks the kernel
/// for randomness on every request, a system call that showed in the profile of a cached read.
#[derive(Clone, Copy)]
struct FastRequestId;

impl MakeRequestId for FastRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let value = axum::http::HeaderValue::from_str(
            id.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
        )
        .ok()?;
        Some(RequestId::new(value))
    }
}

/// Answers 503 `timeout` when a request runs longer than the configured limit.
async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {} ms", limit.as_millis()),
        )
        .into_response(),
    }
}
