//! `/v1/orders`: open to every client, no admin token.

use axum::{
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    error::{ApiError, ApiResult, ErrorBody, ErrorCode},
    extract::{ApiJson, ApiPath},
    AppState,
};
use crate::model::{Order, OrderLines, OrderRequest};

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
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
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: 1 to 255 printable ASCII characters")),
    responses(
        (status = 201, body = Order),
        (status = 400, body = ErrorBody),
        (status = 404, description = "An item names an unknown product", body = ErrorBody),
        (status = 409, description = "`insufficient_stock`; nothing was changed", body = ErrorBody),
        (status = 422, description = "Invalid items, or `idempotency_key_reused`", body = ErrorBody),
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
    let (order, replayed) = (placed.order, placed.replayed);
    let mut response = (StatusCode::CREATED, Json(order)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Read an order.
#[utoipa::path(
    get, path = "/v1/orders/{id}", tag = "orders",
    params(("id" = i64, Path, description = "Order id")),
    responses((status = 200, body = Order), (status = 404, body = ErrorBody))
)]
async fn get_order(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Order>> {
    Ok(Json(state.catalog.order(id).await?))
}

/// The `Idempotency-Key` header, if sent: 1 to 255 printable ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value.to_str().ok().filter(|key| {
        !key.is_empty()
            && key.len() <= MAX_IDEMPOTENCY_KEY_LEN
            && key.chars().all(|c| c.is_ascii_graphic())
    });
    key.map(Some).ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::InvalidIdempotencyKey,
            format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters"
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
        assert_eq!(key("order-123").unwrap().as_deref(), Some("order-123"));
        assert!(key("").is_err());
        assert!(key("has space").is_err());
        assert!(key(&"k".repeat(256)).is_err());
        assert_eq!(idempotency_key(&HeaderMap::new()).unwrap(), None);
    }
}
