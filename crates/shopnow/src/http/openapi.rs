//! The OpenAPI document: every route's `#[utoipa::path]`, gathered with the API's description
//! and its security scheme.

use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};
use utoipa_axum::router::OpenApiRouter;

use super::{error::ErrorBody, ops, orders, products, AppState};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "shopnow",
        description = "Catalog, inventory and orders API whose cached product pages never show \
                       stock older than the last acknowledged write."
    ),
    modifiers(&AdminTokenScheme),
    tags(
        (name = "products", description = "The catalog"),
        (name = "stock", description = "Stock levels"),
        (name = "orders", description = "Orders take stock, all items or none"),
        (name = "operations", description = "Health and metrics"),
    )
)]
struct ApiDoc;

struct AdminTokenScheme;

impl Modify for AdminTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The server's SHOPNOW_ADMIN_TOKEN"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "order_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The access_token that POST /v1/orders answered with the order",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every documented route.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::router())
        .merge(products::router())
        .merge(orders::router())
}

/// The OpenAPI document, as `/openapi.json` serves it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

/// What every operation may answer about the request's head.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum RequestLimits {
    /// `uri_too_long`: the request target (path and query) is longer than 8 KiB.
    #[response(status = 414)]
    UriTooLong(ErrorBody),
    /// `header_too_large`: the request's headers are larger than `SHOPNOW_HTTP_MAX_HEADER_BYTES`.
    #[response(status = 431)]
    HeaderTooLarge(ErrorBody),
}

/// The 503 every operation may answer: retry after `Retry-After`.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum TryAgain {
    /// `timeout` (the request took longer than `SHOPNOW_REQUEST_TIMEOUT_MS`), `unavailable` (the
    /// database is unreachable or out of connections) or `busy` (too many writes of one product
    /// in flight, or its row locked too long). Nothing was changed, except after a `timeout`: a
    /// write under way still finishes. Retry after `Retry-After` seconds.
    #[response(status = 503, headers(("Retry-After" = u32, description = "Seconds to wait before retrying")))]
    Unavailable(ErrorBody),
}

/// What an operation with a JSON body may answer about the body itself.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum JsonBody {
    /// `malformed_json`: the body is not JSON (or is cut off inside it); `bad_request`: a
    /// chunked body that breaks its framing.
    #[response(status = 400)]
    MalformedJson(ErrorBody),
    /// `request_timeout`: the body did not arrive within `SHOPNOW_HTTP_BODY_READ_TIMEOUT_MS`.
    #[response(status = 408)]
    RequestTimeout(ErrorBody),
    /// `payload_too_large`: the body is larger than `SHOPNOW_BODY_LIMIT_BYTES`.
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// `unsupported_media_type`: the body is not sent as `Content-Type: application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
}

/// What an admin-only operation answers without the admin token.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum AdminOnly {
    /// `unauthorized`: no `Authorization: Bearer <SHOPNOW_ADMIN_TOKEN>`, or a wrong token.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// `admin_disabled`: the server has no `SHOPNOW_ADMIN_TOKEN`, so admin writes are off.
    #[response(status = 403)]
    AdminDisabled(ErrorBody),
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
