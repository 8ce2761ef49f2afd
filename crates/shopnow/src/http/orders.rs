//! `/v1/orders`: open to every client, no admin token.

use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::OrderReader,
    error::{ApiError, ApiResult, ErrorBody, ErrorCode},
    extract::{ApiJson, ApiPath},
    openapi::{RequestLimits, TryAgain},
    AppState,
};
use crate::model::{Order, OrderLines, OrderReceipt, OrderRequest};

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// A retry with the key and the same items gets the order's access token back, so a key must
/// be as hard to guess as a password: 16 characters at least (a UUID has 36).
const MIN_IDEMPOTENCY_KEY_LEN: usize = 16;
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(place_order))
        .routes(routes!(get_order))
}

/// Place an order: every item's stock is taken, or none is.
///
/// With an `Idempotency-Key`, a retry of the same order returns the order placed first (with
/// `Idempotent-Replayed: true`) and takes no stock; the same key with another order is 422.
#[utoipa::path(
    post, path = "/v1/orders", tag = "orders", request_body = OrderRequest,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Makes retries safe: 16 to 255 printable ASCII characters, as hard to guess as a password (a UUID fits). Kept for `SHOPNOW_IDEMPOTENCY_KEY_RETENTION_HOURS` (24 by default).",
        min_length = 16, max_length = 255, pattern = r"^[!-~]{16,255}$")),
    responses(
        (status = 201, description = "The order, with the access token that reads it. `Idempotent-Replayed: true` when a retry returned the order placed first.", body = OrderReceipt, headers(
            ("Location" = String, description = "URL of the order"),
            ("Idempotent-Replayed" = String, description = "`true` on a retry that took no stock"),
        )),
        (status = 400, description = "`malformed_json`: the body is not JSON; `invalid_idempotency_key`: the key is too short, too long or not printable ASCII", body = ErrorBody),
        (status = 404, description = "`not_found`: an item names an unknown or deleted product; nothing was changed", body = ErrorBody),
        (status = 409, description = "`insufficient_stock`: an item asks more than its stock; nothing was changed", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_input`: no items, more than 100, a quantity out of 1..=10000, items of several currencies; `idempotency_key_reused`: the key was used for other items", body = ErrorBody),
        RequestLimits, TryAgain,
    )
)]
async fn place_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<OrderRequest>,
) -> ApiResult<Response> {
    let key = idempotency_key(&headers)?;
    let lines = OrderLines::from_request(&request)?;
    let placed = state.catalog.place_order(&lines, key).await?;
    let location = format!("/v1/orders/{}", placed.receipt.order.id);
    let mut response = (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(placed.receipt),
    )
        .into_response();
    if placed.replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Read an order: with the `access_token` its creation answered, or the admin token.
#[utoipa::path(
    get, path = "/v1/orders/{id}", tag = "orders",
    params(("id" = i64, Path, description = "Order id", minimum = 1)),
    security(("order_token" = []), ("admin_token" = [])),
    responses(
        (status = 200, body = Order),
        (status = 401, description = "`unauthorized`: no bearer token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such order, or the token is not this order's", body = ErrorBody),
        RequestLimits, TryAgain,
    )
)]
async fn get_order(
    State(state): State<AppState>,
    reader: OrderReader,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Order>> {
    let stored = state.catalog.order(id).await?;
    // A wrong token reads as "no such order": ids are sequential, and telling which exist
    // would list them.
    if !reader.may_read(stored.access_token.as_deref()) {
        return Err(ApiError::not_found(format!("order {id} does not exist")));
    }
    Ok(Json(stored.order))
}

/// The `Idempotency-Key` header, if sent: 16 to 255 printable ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value.to_str().ok().filter(|key| {
        (MIN_IDEMPOTENCY_KEY_LEN..=MAX_IDEMPOTENCY_KEY_LEN).contains(&key.len())
            && key.chars().all(|c| c.is_ascii_graphic())
    });
    key.map(Some).ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::InvalidIdempotencyKey,
            format!(
                "Idempotency-Key must be {MIN_IDEMPOTENCY_KEY_LEN} to {MAX_IDEMPOTENCY_KEY_LEN} \
                 printable ASCII characters, as hard to guess as a password (a UUID fits)"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(value: &str) -> ApiResult<Option<String>> {
        let mut headers = HeaderMap::new();
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_str(value).unwrap());
        idempotency_key(&headers).map(|k| k.map(str::to_owned))
    }

    #[test]
    fn idempotency_keys_are_printable_and_bounded() {
        let uuid = "5f2c1e0a-8b4d-4c6e-9f7a-3d2b1c0e9f8a";
        assert_eq!(key(uuid).unwrap().as_deref(), Some(uuid));
        assert!(key("").is_err());
        assert!(key("order-123").is_err(), "too easy to guess");
        assert!(key("has space in the middle").is_err());
        assert!(key(&"k".repeat(256)).is_err());
        assert_eq!(idempotency_key(&HeaderMap::new()).unwrap(), None);
    }
}
