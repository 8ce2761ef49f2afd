//! The one place routes are joined: every resource's routes with the OpenAPI document, then the
//! edge every request passes (`edge`). Route modules never import this one.

use axum::{extract::DefaultBodyLimit, http::StatusCode, Router};
use tower::ServiceBuilder;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use super::{
    config::HttpConfig,
    edge::EdgePolicy,
    error::{ApiError, ErrorCode},
    holds,
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

/// The routes behind the edge (`edge::Edge`: request id, limits of head, body and time, panic
/// catcher, access log and metrics), then axum's body limit for the extractors.
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
                .layer(EdgePolicy {
                    access_log: config.access_log,
                    slow_request: config.slow_request,
                    max_header_bytes: config.max_header_bytes,
                    body_limit_bytes: config.body_limit_bytes,
                    body_read_timeout: config.body_read_timeout,
                    request_timeout: config.request_timeout,
                })
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
