//! `/v1/orders`: open to every client, no admin token.

use axum::{
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    app::AppState,
    db::orders::Placed,
    error::{ApiError, ApiResult, ErrorBody},
    extract::{ApiJson, ApiPath},
    order::{validate_idempotency_key, Order, OrderLines, OrderRequest},
};

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

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
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => {
            let key = value.to_str().map_err(|_| {
                ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be printable ASCII",
                )
            })?;
            validate_idempotency_key(key)?;
            Some(key)
        }
    };
    let lines = OrderLines::from_request(&request)?;
    let (order, replayed) = match state.catalog.place_order(&lines, key).await? {
        Placed::New { order, .. } => (order, false),
        Placed::Replayed(order) => (order, true),
    };
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
    let mut conn = state.catalog.db().acquire().await?;
    crate::db::orders::find(&mut conn, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("order {id} does not exist")))
}
