//! The OpenAPI document: every route's `#[utoipa::path]`, gathered with the API's description
//! and its security scheme.

use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};
use utoipa_axum::router::OpenApiRouter;

use super::{ops, orders, products, AppState};

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
