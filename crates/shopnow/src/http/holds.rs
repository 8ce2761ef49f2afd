//! `/v1/holds`: stock set aside while a shopper checks out. Open to every client, like orders;
//! a hold is read, released and converted with its own access token.

use axum::{
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::{Admin, TokenBearer},
    error::{ApiError, ApiResult, ErrorBody},
    extract::{ApiJson, ApiPath, ApiQuery},
    idempotency::{created, idempotency_key},
    responses::{AdminOnly, RateLimited, RequestLimits, TryAgain, PRIVATE},
    state::AppState,
};
use crate::model::{parse_hold_id, Hold, HoldLines, HoldReceipt, HoldRequest, ProductHold};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_hold))
        .routes(routes!(get_hold, release_hold))
        .routes(routes!(list_product_holds, release_product_holds))
}

/// Hold stock: every item is set aside until `expires_at`, or none is.
///
/// Held units count in every product's `reserved` and are not `available` to anyone else until
/// the hold expires (no request needed: reads stop counting it then), is released
/// (`DELETE /v1/holds/{id}`), or becomes an order (`POST /v1/orders` with `hold_id`).
///
/// With an `Idempotency-Key`, a retry of the same hold returns the hold created first (with
/// `Idempotent-Replayed: true`) and sets nothing aside again.
#[utoipa::path(
    post, path = "/v1/holds", tag = "holds", request_body = HoldRequest,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Makes retries safe, as for orders: a random UUID v4, or 22 to 255 random base64url characters.",
        min_length = 22, max_length = 255)),
    responses(
        (status = 201, description = "The hold, with the access token that reads, releases and converts it", body = HoldReceipt, headers(
            ("Location" = String, description = "URL of the hold"),
            ("Idempotent-Replayed" = String, description = "`true` on a retry that set nothing aside"),
            ("Cache-Control" = String, description = "`private, no-store`: the answer carries the hold's access token"),
        )),
        (status = 400, description = "`malformed_json`; `invalid_idempotency_key`", body = ErrorBody),
        (status = 404, description = "`not_found`: an item names an unknown or deleted product; nothing was changed", body = ErrorBody),
        (status = 408, description = "`request_timeout`", body = ErrorBody),
        (status = 409, description = "`insufficient_stock`: an item asks more than is available; nothing was changed", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_input`: no items, more than 100, a product named twice, a quantity out of 1..=10000, items of several currencies, `ttl_seconds` out of 1..=3600; `over_purchase_limit`: an item asks more of a product than its `purchase_limit` (or the shop's default) allows", body = ErrorBody),
        RequestLimits, TryAgain, RateLimited,
    )
)]
async fn create_hold(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<HoldRequest>,
) -> ApiResult<Response> {
    let key = idempotency_key(&headers)?;
    let hold = HoldLines::from_request(&request, state.hold_ttl_secs)?;
    let hold = state.catalog.create_hold(&hold, key.as_deref()).await?;
    let location = format!("/v1/holds/{}", hold.receipt.hold.id);
    Ok(created(location, hold.receipt, hold.replayed))
}

/// Read a hold: with the `access_token` its creation answered, or the admin token.
#[utoipa::path(
    get, path = "/v1/holds/{id}", tag = "holds",
    params(("id" = String, Path, description = "Hold id (a UUID)")),
    security(("hold_token" = []), ("admin_token" = [])),
    responses(
        (status = 200, body = Hold, headers(("Cache-Control" = String, description = "`private, no-store`"))),
        (status = 401, description = "`unauthorized`: no bearer token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such hold, an id that is not a UUID, or a token that is not this hold's", body = ErrorBody),
        RequestLimits, TryAgain,
    )
)]
async fn get_hold(
    State(state): State<AppState>,
    TokenBearer(bearer): TokenBearer,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let id = hold_id(&id)?;
    let hold = state.catalog.hold(id, &bearer).await?;
    Ok(([PRIVATE], Json(hold)))
}

/// Release a hold: its units are available again to every reader once this answers.
///
/// A hold that has ended already (expired, released) is answered as it is and nothing changes;
/// a hold that became an order cannot be released (cancel the order instead).
#[utoipa::path(
    delete, path = "/v1/holds/{id}", tag = "holds",
    params(("id" = String, Path, description = "Hold id (a UUID)")),
    security(("hold_token" = []), ("admin_token" = [])),
    responses(
        (status = 200, description = "The hold, `status: released` (or `expired` if it lapsed first)", body = Hold, headers(("Cache-Control" = String, description = "`private, no-store`"))),
        (status = 401, description = "`unauthorized`: no bearer token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such hold, an id that is not a UUID, or a token that is not this hold's", body = ErrorBody),
        (status = 409, description = "`hold_converted`: the hold became an order; nothing was changed", body = ErrorBody),
        RequestLimits, TryAgain, RateLimited,
    )
)]
async fn release_hold(
    State(state): State<AppState>,
    TokenBearer(bearer): TokenBearer,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let id = hold_id(&id)?;
    let hold = state.catalog.release_hold(id, bearer).await?;
    Ok(([PRIVATE], Json(hold)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HoldsPage {
    /// Page size, 1 to 1000; 100 when omitted.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Id of the last hold of the previous page (its `next`).
    after: Option<String>,
}

/// A page of a product's live holds.
#[derive(Debug, Serialize, ToSchema)]
struct ProductHolds {
    holds: Vec<ProductHold>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// What releasing a product's holds did.
#[derive(Debug, Serialize, ToSchema)]
struct ReleasedHolds {
    /// Holds released (each whole, with its units of other products).
    released: usize,
}

/// The live holds of a product (admin): who set how much aside until when, to see a drop's
/// checkout or an attempt to hold the stock away from everyone.
#[utoipa::path(
    get, path = "/v1/products/{id}/holds", tag = "holds",
    params(("id" = i64, Path, description = "Product id", minimum = 1), HoldsPage),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Live holds (held, not expired), in id order; none for an unknown product", body = ProductHolds, headers(("Cache-Control" = String, description = "`private, no-store`"))),
        (status = 422, description = "`invalid_input`: `limit` out of 1..=1000, `after` not a hold id", body = ErrorBody),
        AdminOnly, RequestLimits, TryAgain,
    )
)]
async fn list_product_holds(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(page): ApiQuery<HoldsPage>,
) -> ApiResult<impl IntoResponse> {
    let limit = page.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit must be 1 to 1000"));
    }
    let after = page
        .after
        .as_deref()
        .map(|after| {
            uuid::Uuid::try_parse(after)
                .map_err(|_| ApiError::invalid("after must be a hold id (a UUID)"))
        })
        .transpose()?;
    let holds = state.catalog.live_holds_of(id, after, limit).await?;
    let next = (holds.len() as i64 == limit)
        .then(|| holds.last().map(|hold| hold.id.clone()))
        .flatten();
    Ok(([PRIVATE], Json(ProductHolds { holds, next })))
}

/// Release every live hold of a product (admin): its held units are available again to every
/// reader once this answers. Each hold is released whole (its units of other products too),
/// one write after another; a hold made meanwhile is kept, one converted meanwhile stays an
/// order. For an operator facing stock held away from everyone.
#[utoipa::path(
    delete, path = "/v1/products/{id}/holds", tag = "holds",
    params(("id" = i64, Path, description = "Product id", minimum = 1)),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "How many holds were released (0 for an unknown product)", body = ReleasedHolds),
        AdminOnly, RequestLimits, TryAgain,
    )
)]
async fn release_product_holds(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ReleasedHolds>> {
    let released = state.catalog.release_holds_of(id).await?;
    Ok(Json(ReleasedHolds { released }))
}

/// A path's hold id: what is not a UUID names no hold.
fn hold_id(id: &str) -> ApiResult<uuid::Uuid> {
    parse_hold_id(id).map_err(|_| {
        ApiError::not_found(format!("hold {id:?} does not exist (hold ids are UUIDs)"))
    })
}
