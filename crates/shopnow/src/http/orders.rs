//! `/v1/orders`: open to every client, no admin token; an order is read and cancelled with its
//! own access token.

use axum::{
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
    Json,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::TokenBearer,
    error::{ApiError, ApiResult, ErrorBody},
    extract::{ApiJson, ApiPath},
    idempotency::{created, idempotency_key},
    responses::{RateLimited, RequestLimits, TryAgain, PRIVATE},
    state::AppState,
};
use crate::model::{Order, OrderReceipt, OrderRequest, OrderSource};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(place_order))
        .routes(routes!(get_order))
        .routes(routes!(cancel_order))
}

/// Place an order: every item's stock is taken, or none is.
///
/// Either from `items` (each must be available: in stock and not held by anyone), or from a
/// live hold (`hold_id`, with the hold's `access_token` as bearer token): the hold's items, with
/// no second availability check, and the hold ends as `converted`.
///
/// With an `Idempotency-Key`, a retry of the same order returns the order placed first (with
/// `Idempotent-Replayed: true`) and takes no stock. The same key with other items is another
/// order: the answer never tells whether a key was used before.
#[utoipa::path(
    post, path = "/v1/orders", tag = "orders", request_body = OrderRequest,
    security((), ("hold_token" = [])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Makes retries safe: a random UUID v4, or 22 to 255 random base64url characters. A retry with the same key and items returns the first order with its access token, so the key is a secret. Keys that are plainly not random (few distinct characters) are refused. Kept for `SHOPNOW_IDEMPOTENCY_KEY_RETENTION_HOURS` (24 by default).",
        min_length = 22, max_length = 255, pattern = r"^[A-Za-z0-9_-]{22,255}$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$")),
    responses(
        (status = 201, description = "The order, with the access token that reads it. `Idempotent-Replayed: true` when a retry returned the order placed first.", body = OrderReceipt, headers(
            ("Location" = String, description = "URL of the order"),
            ("Idempotent-Replayed" = String, description = "`true` on a retry that took no stock"),
            ("Cache-Control" = String, description = "`private, no-store`: the answer carries the order's access token"),
        )),
        (status = 400, description = "`malformed_json`: the body is not JSON; `invalid_idempotency_key`: the key is neither a UUID v4 nor 22 to 255 base64url characters, or is plainly not random", body = ErrorBody),
        (status = 401, description = "`unauthorized`: an order from a hold without a bearer token", body = ErrorBody),
        (status = 404, description = "`not_found`: an item names an unknown or deleted product, or the hold does not exist (or the token is not its own); nothing was changed", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body did not arrive within `SHOPNOW_HTTP_BODY_READ_TIMEOUT_MS`", body = ErrorBody),
        (status = 409, description = "`insufficient_stock`: an item asks more than is available; `hold_expired`: the hold expired or was released; `hold_converted`: the hold became an order already. Nothing was changed", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_input`: no items, more than 100, a quantity out of 1..=10000, items of several currencies, items and hold_id both, a hold_id that is not a UUID; `over_purchase_limit`: an item asks more of a product than its `purchase_limit` (or the shop's default) allows", body = ErrorBody),
        RequestLimits, TryAgain, RateLimited,
    )
)]
async fn place_order(
    State(state): State<AppState>,
    bearer: Option<TokenBearer>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<OrderRequest>,
) -> ApiResult<Response> {
    let key = idempotency_key(&headers)?;
    let source = OrderSource::from_request(&request)?;
    let placed = state
        .catalog
        .place_order(&source, bearer.map(|TokenBearer(b)| b), key.as_deref())
        .await?;
    let location = format!("/v1/orders/{}", placed.receipt.order.id);
    Ok(created(location, placed.receipt, placed.replayed))
}

/// Read an order: with the `access_token` its creation answered, or the admin token.
#[utoipa::path(
    get, path = "/v1/orders/{id}", tag = "orders",
    params(("id" = i64, Path, description = "Order id", minimum = 1)),
    security(("order_token" = []), ("admin_token" = [])),
    responses(
        (status = 200, body = Order, headers(("Cache-Control" = String, description = "`private, no-store`: an order is one customer's"))),
        (status = 401, description = "`unauthorized`: no bearer token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such order, or the token is not this order's", body = ErrorBody),
        RequestLimits, TryAgain,
    )
)]
async fn get_order(
    State(state): State<AppState>,
    TokenBearer(bearer): TokenBearer,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<impl IntoResponse> {
    let stored = state.catalog.order(id).await?;
    // A wrong token reads as "no such order": ids are sequential, and telling which exist
    // would list them.
    if !bearer.opens(stored.access_token.as_deref()) {
        return Err(ApiError::not_found(format!("order {id} does not exist")));
    }
    Ok(([PRIVATE], Json(stored.order)))
}

/// Cancel an order: its stock comes back in the same transaction, and every product read
/// shows it once this answers. With the order's `access_token`, or the admin token.
///
/// Cancelling a cancelled order answers the same order again and returns nothing twice.
#[utoipa::path(
    post, path = "/v1/orders/{id}/cancel", tag = "orders",
    params(("id" = i64, Path, description = "Order id", minimum = 1)),
    security(("order_token" = []), ("admin_token" = [])),
    responses(
        (status = 200, description = "The order, `status: cancelled`", body = Order, headers(("Cache-Control" = String, description = "`private, no-store`"))),
        (status = 401, description = "`unauthorized`: no bearer token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such order, or the token is not this order's; nothing was changed", body = ErrorBody),
        RequestLimits, TryAgain, RateLimited,
    )
)]
async fn cancel_order(
    State(state): State<AppState>,
    TokenBearer(bearer): TokenBearer,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<impl IntoResponse> {
    let stored = state.catalog.cancel_order(id, bearer).await?;
    Ok(([PRIVATE], Json(stored.order)))
}
