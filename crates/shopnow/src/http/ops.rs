//! Operations endpoints: liveness, readiness, metrics.

use axum::{extract::State, http::header, http::StatusCode, response::IntoResponse, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    responses::{RequestLimits, TryAgain},
    state::AppState,
};
use crate::observability;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(livez))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(super) struct Liveness {
    #[schema(example = "ok")]
    pub status: String,
    /// The package version.
    #[schema(example = "0.1.0")]
    pub version: String,
    /// What the binary was built as: `SHOPNOW_BUILD` at build time (the Dockerfile's build
    /// argument), `local` otherwise. Tells which build a replica runs during a rolling update.
    #[schema(example = "local")]
    pub build: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(super) struct Readiness {
    /// `ready`, `draining` or `unavailable`.
    #[schema(example = "ready")]
    pub status: String,
    /// `ok` or `down`.
    #[schema(example = "ok")]
    pub database: String,
    /// `ok`, `degraded` (Redis unreachable; reads go to Postgres) or `disabled`.
    #[schema(example = "ok")]
    pub cache: String,
    #[schema(example = "versioned")]
    pub strategy: String,
}

/// 200 while the process runs. Touches no dependency, so a slow database never gets a healthy
/// instance restarted.
#[utoipa::path(
    get, path = "/livez", tag = "operations",
    responses((status = 200, body = Liveness), RequestLimits, TryAgain)
)]
async fn livez() -> Json<Liveness> {
    Json(Liveness {
        status: "ok".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        build: option_env!("SHOPNOW_BUILD").unwrap_or("local").to_string(),
    })
}

/// 200 when Postgres answers and the instance is not draining; 503 otherwise. Redis down is
/// `"cache": "degraded"` and still 200: reads then go to Postgres.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, body = Readiness),
        (status = 503, description = "Postgres is down or refuses to serve, or the instance is draining", body = Readiness,
            headers(("Retry-After" = String, description = "Seconds to wait before asking again"))),
        RequestLimits,
    )
)]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database_up = state.catalog.database_ready().await;
    let cache = state.catalog.cache_health().await;
    let draining = state.lifecycle.is_draining();
    let status = match (draining, database_up) {
        (true, _) => "draining",
        (false, false) => "unavailable",
        (false, true) => "ready",
    };
    observability::record_readiness(status == "ready");
    let (code, retry_after) = if status == "ready" {
        (StatusCode::OK, None)
    } else {
        // As every 503 of the API: worth asking again in a second.
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some([(header::RETRY_AFTER, "1")]),
        )
    };
    let body = Readiness {
        status: status.to_string(),
        database: if database_up { "ok" } else { "down" }.to_string(),
        cache: cache.to_string(),
        strategy: state.catalog.strategy().to_string(),
    };
    (code, retry_after, Json(body))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain"),
        RequestLimits, TryAgain,
    )
)]
async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        observability::prometheus().render(),
    )
}
