//! The OpenAPI document's own part: the API's description, tags and security schemes. The
//! routes' `#[utoipa::path]`s join it in `router`.

use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "shopnow",
        description = "Catalog, inventory and orders API whose cached product pages never show \
                       stock older than the last acknowledged write.\n\n\
                       Besides what each operation lists, every answer of the server is JSON \
                       and every error has the shape of ErrorBody: a path that is no route \
                       answers 404 `not_found`, a method a route does not take 405 \
                       `method_not_allowed`, and a request HTTP/1.1 does not \
                       allow 400 `bad_request`."
    ),
    modifiers(&AdminTokenScheme),
    tags(
        (name = "products", description = "The catalog, and its category pages"),
        (name = "categories", description = "The tree of categories that list products"),
        (name = "stock", description = "Stock levels"),
        (name = "holds", description = "Holds set stock aside for a while, all items or none"),
        (name = "orders", description = "Orders take stock, all items or none; a cancellation returns it"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub(super) struct ApiDoc;

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
            "hold_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The access_token that POST /v1/holds answered with the hold",
                    ))
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
