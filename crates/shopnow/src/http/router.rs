//! The one place routes are joined: every resource's routes with the OpenAPI document, behind the
//! edge every request passes (`edge`), and the product read served past the router (`Api`).
//! Route modules never import this one.

use axum::{
    extract::{DefaultBodyLimit, Request},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json, Router,
};
use tower::{ServiceBuilder, ServiceExt};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use super::{
    categories,
    config::HttpConfig,
    edge::{Edge, EdgePolicy},
    error::{ApiError, ErrorCode},
    holds,
    openapi::ApiDoc,
    ops, orders,
    products::{self, ProductReads, PRODUCT_READ_ROUTE},
    rate_limits,
    state::AppState,
};

/// Every documented route.
fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::router())
        .merge(products::router())
        .merge(categories::router())
        .merge(holds::router())
        .merge(orders::router())
}

/// The OpenAPI document, as `/openapi.json` serves it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    documented_routes().into_openapi()
}

/// The API as the server calls it: the hot product read past the router, every other request
/// through it (`products::ProductReads` says why). Cheap to clone.
#[derive(Clone)]
pub(crate) struct Api {
    router: Router,
    product_reads: Edge<ProductReads>,
}

impl Api {
    pub(crate) async fn answer(self, request: Request) -> Response {
        let answered = if ProductReads::hot_read_id(&request).is_some() {
            self.product_reads.oneshot(request).await
        } else {
            self.router.oneshot(request).await
        };
        match answered {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// The API: the routes and the product read's shortcut, each behind the edge.
pub(crate) fn api(state: AppState, config: &HttpConfig) -> Api {
    let edge = EdgePolicy {
        access_log: config.access_log,
        slow_request: config.slow_request,
        max_header_bytes: config.max_header_bytes,
        body_limit_bytes: config.body_limit_bytes,
        body_read_timeout: config.body_read_timeout,
        request_timeout: config.request_timeout,
    };
    Api {
        product_reads: edge.serving(PRODUCT_READ_ROUTE, ProductReads::new(state.clone())),
        router: router(state, edge, config.body_limit_bytes),
    }
}

/// The routes behind the edge (`edge::Edge`: request id, limits of head, body and time, panic
/// catcher, access log and metrics), then axum's body limit for the extractors.
fn router(state: AppState, edge: EdgePolicy, body_limit_bytes: usize) -> Router {
    let (routes, openapi) = documented_routes().split_for_parts();
    let docs: Router<AppState> = SwaggerUi::new("/docs").url("/openapi.json", openapi).into();
    routes
        .merge(docs.layer(axum::middleware::map_response(docs_answers_in_json)))
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "this route does not accept that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limits::limit_writes,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(edge)
                .layer(DefaultBodyLimit::max(body_limit_bytes)),
        )
        .with_state(state)
}

/// The documentation pages answer bare where the API would answer JSON: a page it does not
/// have is an empty 404, `/docs` an empty 303 to `/docs/`. Those get the API's shapes: the
/// error, and the redirect's target.
async fn docs_answers_in_json(response: Response) -> Response {
    if response.headers().contains_key(header::CONTENT_TYPE) {
        return response;
    }
    if response.status() == StatusCode::NOT_FOUND {
        return ApiError::not_found("no such page of the API's documentation (see /docs/)")
            .into_response();
    }
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|location| location.to_str().ok())
        .map(str::to_owned);
    match location {
        Some(location) if response.status().is_redirection() => {
            let (mut parts, _) = response.into_parts();
            parts.headers.remove(header::CONTENT_LENGTH);
            let body = Json(serde_json::json!({ "location": location })).into_response();
            parts.headers.extend(body.headers().clone());
            Response::from_parts(parts, body.into_body())
        }
        _ => response,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::model::{MAX_ITEMS, MAX_PRICE_CENTS, MAX_QUANTITY, MAX_STOCK};

    /// The route label of the product read served past the router is the documented route.
    #[test]
    fn the_product_read_past_the_router_is_the_documented_one() {
        let document = serde_json::to_value(super::openapi_document()).unwrap();
        let path = &document["paths"][super::PRODUCT_READ_ROUTE];
        assert!(path["get"].is_object(), "{path}");
    }

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
