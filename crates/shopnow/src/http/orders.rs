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
    responses::{RequestLimits, TryAgain},
    state::AppState,
};
use crate::model::{Order, OrderLines, OrderReceipt, OrderRequest};

/// An order is one customer's: no shared cache (a proxy, a CDN) may keep it, and no browser
/// may store it on disk.
const PRIVATE: (HeaderName, HeaderValue) = (
    header::CACHE_CONTROL,
    HeaderValue::from_static("private, no-store"),
);
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// A retry with the key and the same items gets the order's access token back, so a key must
/// be a secret as strong as the token: at least 122 random bits. The forms that can carry them
/// and be checked: a UUID v4, or 22 to 255 base64url characters (16 random bytes or more).
const MIN_BASE64URL_KEY_LEN: usize = 22;
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
const IDEMPOTENCY_KEY_RULE: &str = "Idempotency-Key must be a random UUID v4 (such as \
    crypto.randomUUID() makes) or 22 to 255 random base64url characters (such as \
    secrets.token_urlsafe(16) makes): anyone who guesses a key and the order's items gets the \
    order's access token back";

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(place_order))
        .routes(routes!(get_order))
}

/// Place an order: every item's stock is taken, or none is.
///
/// With an `Idempotency-Key`, a retry of the same order returns the order placed first (with
/// `Idempotent-Replayed: true`) and takes no stock. The same key with other items is another
/// order: the answer never tells whether a key was used before.
#[utoipa::path(
    post, path = "/v1/orders", tag = "orders", request_body = OrderRequest,
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
        (status = 404, description = "`not_found`: an item names an unknown or deleted product; nothing was changed", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body did not arrive within `SHOPNOW_HTTP_BODY_READ_TIMEOUT_MS`", body = ErrorBody),
        (status = 409, description = "`insufficient_stock`: an item asks more than its stock; nothing was changed", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_input`: no items, more than 100, a quantity out of 1..=10000, items of several currencies", body = ErrorBody),
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
        [PRIVATE],
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
        (status = 200, body = Order, headers(("Cache-Control" = String, description = "`private, no-store`: an order is one customer's"))),
        (status = 401, description = "`unauthorized`: no bearer token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such order, or the token is not this order's", body = ErrorBody),
        RequestLimits, TryAgain,
    )
)]
async fn get_order(
    State(state): State<AppState>,
    reader: OrderReader,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<impl IntoResponse> {
    let stored = state.catalog.order(id).await?;
    // A wrong token reads as "no such order": ids are sequential, and telling which exist
    // would list them.
    if !reader.may_read(stored.access_token.as_deref()) {
        return Err(ApiError::not_found(format!("order {id} does not exist")));
    }
    Ok(([PRIVATE], Json(stored.order)))
}

/// The `Idempotency-Key` header, if sent and strong enough (`IDEMPOTENCY_KEY_RULE`).
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|key| is_strong_key(key))
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(ErrorCode::InvalidIdempotencyKey, IDEMPOTENCY_KEY_RULE)
        })
}

/// A UUID must be a v4 (the other versions carry clocks, addresses or names: guessable) whose
/// hex digits are not plainly chosen by hand: at least 6 distinct ones (random ones have fewer
/// less than 1 time in 10^10). Anything else must be a base64url secret.
fn is_strong_key(key: &str) -> bool {
    match uuid::Uuid::try_parse(key) {
        Ok(uuid) => {
            uuid.get_version() == Some(uuid::Version::Random)
                && uuid.get_variant() == uuid::Variant::RFC4122
                && distinct(
                    key.bytes()
                        .filter(u8::is_ascii_hexdigit)
                        .map(|b| b.to_ascii_lowercase()),
                ) >= 6
        }
        Err(_) => is_base64url_secret(key),
    }
}

/// 22 to 255 base64url characters with at least 10 distinct ones (22 random ones have fewer
/// about 2 times in 10^9): `aaaa…` or a counter padded to length is refused.
fn is_base64url_secret(key: &str) -> bool {
    (MIN_BASE64URL_KEY_LEN..=MAX_IDEMPOTENCY_KEY_LEN).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && distinct(key.bytes()) >= 10
}

fn distinct(symbols: impl Iterator<Item = u8>) -> usize {
    let mut seen = [false; 256];
    symbols.for_each(|symbol| seen[symbol as usize] = true);
    seen.iter().filter(|seen| **seen).count()
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
    fn idempotency_keys_must_be_random_uuids_or_long_base64url_secrets() {
        for strong in [
            "5f2c1e0a-8b4d-4c6e-9f7a-3d2b1c0e9f8a",
            "5F2C1E0A-8B4D-4C6E-9F7A-3D2B1C0E9F8A",
            "Jm2Gv_0qXc-T8r1LwZ4yPA",
            "5f2c1e0a8b4d4c6e9f7a3d2b1c0e9f8a",
            &uuid::Uuid::new_v4().to_string(),
        ] {
            assert_eq!(key(strong).unwrap().as_deref(), Some(strong), "{strong}");
        }
        for weak in [
            "",
            "order-123",
            "aaaaaaaaaaaaaaaa",
            "order-2026-00000042",
            "aaaaaaaaaaaaaaaaaaaaaa",
            "order-2026-000000000042",
            "00000000-0000-4000-8000-000000000042",
            "5f2c1e0a-8b4d-1c6e-9f7a-3d2b1c0e9f8a",
            "has space in the middle, long enough",
            "Jm2Gv_0qXc-T8r1LwZ4yPA!",
            &"Jm2Gv_0qXc-T8r1LwZ4yPA".repeat(12),
        ] {
            assert!(key(weak).is_err(), "{weak:?} was accepted");
        }
        assert_eq!(idempotency_key(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn random_keys_pass_the_randomness_screen() {
        for _ in 0..10_000 {
            let uuid = uuid::Uuid::new_v4().to_string();
            assert!(is_strong_key(&uuid), "{uuid}");
            let secret: String = (0..22)
                .map(|_| {
                    let alphabet =
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                    alphabet[rand::random_range(0..64)] as char
                })
                .collect();
            assert!(is_strong_key(&secret), "{secret}");
        }
    }
}
