//! The one place routes are joined: every resource's routes with the OpenAPI document, then the
//! middleware stack, read from the outside in. Route modules never import this one.

use axum::{extract::DefaultBodyLimit, http::StatusCode, Router};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{PropagateRequestIdLayer, SetRequestIdLayer},
};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use super::{
    config::HttpConfig,
    error::{ApiError, ErrorCode},
    holds,
    middleware::{self, FastRequestId, Limits, Observe, REQUEST_ID},
    openapi::ApiDoc,
    ops, orders, products,
    state::AppState,
};

/// Every documented route.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::router())
        .merge(products::router())
        .merge(holds::router())
        .merge(orders::router())
}

/// The OpenAPI document, as `/openapi.json` serves it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

/// The routes with their middleware, read from the outside in: request id, access log and
/// metrics, panic catcher, limits (head and target size, the body read within its size and
/// time), the handler's time limit, then the routes.
pub(crate) fn router(state: AppState, config: &HttpConfig) -> Router {
    let (api, openapi) = api().split_for_parts();
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

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::model::{MAX_ITEMS, MAX_PRICE_CENTS, MAX_QUANTITY, MAX_STOCK};

    /// The bounds written as literals in the schema attributes are the ones validation uses.
    #[test]
    fn published_bounds_are_the_validated_ones() {
        let document = serde_json::to_value(super::openapi_document()).unwrap();
        let schema = |name: &str| document["components"]["schemas"][name].clone();
        let property = |name: &str, field: &str| schema(name)["properties"][field].clone();
        let number = |value: &Value| value.as_f64().unwrap();
        for (name, field, maximum) in [
            ("NewProduct", "stock", MAX_STOCK),
            ("NewProduct", "price_cents", MAX_PRICE_CENTS),
            ("ProductPatch", "price_cents", MAX_PRICE_CENTS),
            ("StockLevel", "stock", MAX_STOCK),
            ("StockAdjustment", "delta", MAX_STOCK),
            ("OrderItemRequest", "quantity", MAX_QUANTITY),
        ] {
            let field_schema = property(name, field);
            let published = &field_schema["maximum"];
            assert_eq!(number(published), maximum as f64, "{name}.{field}");
        }
        assert_eq!(
            number(&property("StockAdjustment", "delta")["minimum"]),
            -(MAX_STOCK as f64)
        );
        assert_eq!(
            property("OrderRequest", "items")["maxItems"],
            MAX_ITEMS as u64
        );
    }
}
