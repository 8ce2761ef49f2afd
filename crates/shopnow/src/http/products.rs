//! `/v1/products`: the catalog and its stock.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    extract::{FromRequestParts, Request, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tower::Service;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::Admin,
    error::{ApiError, ApiResult, ErrorBody},
    extract::{ApiJson, ApiPath, ApiQuery},
    responses::{AdminOnly, JsonBody, RequestLimits, TryAgain},
    state::AppState,
};
use crate::{
    cache::{CacheStatus, ProductRead, VersionedBody},
    model::{
        validate_slug, Listing, NewProduct, Position, Product, ProductPatch, Sort, SortKey,
        StockAdjustment, StockLevel, DEFAULT_PAGE, MAX_PAGE, MAX_PRICE_CENTS,
    },
};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_products, create_product))
        .routes(routes!(get_product, update_product, delete_product))
        .routes(routes!(set_stock))
        .routes(routes!(adjust_stock))
}

/// Unknown parameters are ignored: shop links carry `utm_source` and the like.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PageQuery {
    /// A category's slug: the products in it and in every category under it.
    #[param(example = "t-shirts")]
    category: Option<String>,
    /// `true`: only products with `available` > 0.
    in_stock: Option<bool>,
    /// Only products priced at least this (cents).
    #[param(minimum = 0, maximum = 1_000_000_000_000_i64)]
    min_price: Option<i64>,
    /// Only products priced at most this (cents).
    #[param(minimum = 0, maximum = 1_000_000_000_000_i64)]
    max_price: Option<i64>,
    /// `id` (oldest first, the default), `newest`, `price`, `-price` or `name`; ties are
    /// broken by id.
    #[param(example = "price")]
    sort: Option<String>,
    /// Page size, 1 to 200; 50 when omitted.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page, as it came: where this page starts.
    cursor: Option<String>,
    /// With `sort=id` (the default) only, instead of `cursor`: the id of the last product of
    /// the previous page (its `next`); 0 when omitted.
    #[param(minimum = 0)]
    after: Option<i64>,
}

impl PageQuery {
    fn listing(self) -> Result<Listing, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::invalid(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        for (name, price) in [("min_price", self.min_price), ("max_price", self.max_price)] {
            if price.is_some_and(|price| !(0..=MAX_PRICE_CENTS).contains(&price)) {
                return Err(ApiError::invalid(format!(
                    "{name} must be between 0 and {MAX_PRICE_CENTS}"
                )));
            }
        }
        if let (Some(min), Some(max)) = (self.min_price, self.max_price) {
            if min > max {
                return Err(ApiError::invalid("min_price must not be above max_price"));
            }
        }
        if let Some(category) = &self.category {
            validate_slug(category).map_err(|_| {
                ApiError::not_found(format!("category {category:?} does not exist"))
            })?;
        }
        let sort = Sort::parse(self.sort.as_deref().unwrap_or("id"))?;
        let mut listing = Listing {
            category: self.category,
            in_stock: self.in_stock.unwrap_or(false),
            min_price: self.min_price,
            max_price: self.max_price,
            sort,
            limit,
            after: None,
        };
        listing.after = match (self.cursor, self.after) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid("send cursor or after, not both"));
            }
            (Some(cursor), None) => Some(listing.read_cursor(&cursor)?),
            (None, Some(after)) if after < 0 => {
                return Err(ApiError::invalid("after must not be negative"));
            }
            (None, Some(_)) if sort != Sort::Id => {
                return Err(ApiError::invalid(
                    "after goes with sort=id only; other sorts page with cursor",
                ));
            }
            (None, Some(after)) => Some(Position {
                key: SortKey::None,
                id: after,
            }),
            (None, None) => None,
        };
        Ok(listing)
    }
}

/// The shape of a list page (the handler writes it from the items' JSON as cached).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(super) struct ProductPage {
    /// Each product exactly as `GET /v1/products/{id}` shows it now.
    pub items: Vec<Product>,
    /// The ETag of each item, in the same order: what a read of the product answers with it,
    /// for `If-None-Match` on a product page opened from the list.
    pub etags: Vec<String>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// With `sort=id`: pass as `after` for the next page (kept for clients of the first
    /// version); null on the last page and with other sorts.
    pub next: Option<i64>,
}

/// List products: a category page, filtered, sorted, one page at a time.
///
/// Never staler than a product read: every item shows at least the version of the last write
/// acknowledged before the page was asked for (as `GET /v1/products/{id}` would), and
/// membership and order match what the items show (docs/design.md, "Category pages"). Pages
/// are keyset-paged: a cursor names a place in the order, so no product is skipped or
/// repeated because others were written meanwhile. `ETag` names the page's content; send it
/// back in `If-None-Match` for a 304 while nothing on the page changed. `X-Cache` says whether
/// the page came from the cache (`hit`), was read from Postgres and cached (`miss`), or was
/// not cached (`bypass`).
#[utoipa::path(
    get, path = "/v1/products", tag = "products",
    params(
        PageQuery,
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier read of the same page"),
    ),
    responses(
        (status = 200, body = ProductPage, headers(
            ("ETag" = String, description = "Names the page's content: its items' versions and where the next page starts"),
            ("X-Cache" = String, description = "hit, miss or bypass"),
        )),
        (status = 304, description = "Nothing on the page changed since the ETag of If-None-Match"),
        (status = 404, description = "`not_found`: no category has this slug", body = ErrorBody),
        (status = 422, description = "`invalid_input`: a limit, price or sort out of range, or a cursor of another listing or changed by hand", body = ErrorBody),
        RequestLimits, TryAgain,
    )
)]
async fn list_products(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
    IfNoneMatch(tags): IfNoneMatch,
) -> ApiResult<Response> {
    let listing = query.listing()?;
    let page = state.catalog.read_page(&listing).await?;
    let next_cursor = page.next.as_ref().map(|next| listing.cursor_after(next));
    let next = page
        .next
        .as_ref()
        .filter(|_| listing.sort == Sort::Id)
        .map(|next| next.id);
    let (body, etag) = page_body(&page.items, next_cursor.as_deref(), next);
    let mut response = if if_none_match(&tags, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex digits and quotes"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-cache", cache_header(page.status));
    Ok(response)
}

/// `{"items":[...],"etags":[...],"next_cursor":...,"next":...}`, with each item's JSON as it
/// was cached (nothing is parsed or serialised again), and the page's ETag: a hash of its
/// items' ETags (each names one content of one product) and of where the next page starts.
fn page_body(
    items: &[VersionedBody],
    next_cursor: Option<&str>,
    next: Option<i64>,
) -> (Vec<u8>, String) {
    use std::io::Write as _;
    let mut body =
        Vec::with_capacity(64 + items.iter().map(|item| item.body.len() + 16).sum::<usize>());
    body.extend_from_slice(b"{\"items\":[");
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&item.body);
    }
    body.extend_from_slice(b"],\"etags\":[");
    let mut hash = Fnv::default();
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        // The item's ETag (`VersionedBody::etag`) as a JSON string, written in place.
        let start = body.len();
        let _ = match (item.history, item.lapsed) {
            (0, 0) => write!(body, "\"\\\"{}\\\"\"", item.version),
            (0, lapsed) => write!(body, "\"\\\"{}-{lapsed}\\\"\"", item.version),
            (history, 0) => write!(body, "\"\\\"{history}.{}\\\"\"", item.version),
            (history, lapsed) => {
                write!(body, "\"\\\"{history}.{}-{lapsed}\\\"\"", item.version)
            }
        };
        hash.feed(&body[start..]);
    }
    body.extend_from_slice(b"],\"next_cursor\":");
    serde_json::to_writer(&mut body, &next_cursor).expect("a string serialises");
    hash.feed(next_cursor.unwrap_or_default().as_bytes());
    body.extend_from_slice(b",\"next\":");
    serde_json::to_writer(&mut body, &next).expect("a number serialises");
    body.push(b'}');
    (body, format!("\"p{:016x}\"", hash.0))
}

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Create a product.
#[utoipa::path(
    post, path = "/v1/products", tag = "products", request_body = NewProduct,
    security(("admin_token" = [])),
    responses(
        (status = 201, body = Product, headers(("Location" = String, description = "URL of the new product"), ("ETag" = String, description = "The ETag a read of this version answers"))),
        (status = 409, description = "`duplicate_sku`: a live product has this SKU", body = ErrorBody),
        (status = 422, description = "`invalid_input`: a field is missing, unknown or out of its range", body = ErrorBody),
        AdminOnly, JsonBody, RequestLimits, TryAgain,
    )
)]
async fn create_product(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(new): ApiJson<NewProduct>,
) -> ApiResult<Response> {
    new.validate()?;
    let product = state.catalog.create(&new).await?;
    let location = format!("/v1/products/{}", product.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Written::of(&state, product),
    )
        .into_response())
}

/// Read one product. Served from the cache when the strategy has one.
///
/// `ETag` is the product's version (`"<version>"`; after the database failed over,
/// `"<history>.<version>"`, since a promoted database may hand out a lost version's number
/// again), followed by `-<n>` once `n` of the version's holds have expired (an expiry changes
/// `reserved` and `available` with no new version); send it back in `If-None-Match` to get a
/// 304 when it is still current. `X-Cache` says whether the cache answered (`hit`), was filled
/// (`miss`) or was not used (`bypass`).
///
/// `reserved` never counts a hold that expired, was released or became an order before the
/// read started (expiries judged by the database's clock, within the bound the README states).
#[utoipa::path(
    get, path = "/v1/products/{id}", tag = "products",
    params(
        ("id" = i64, Path, description = "Product id", minimum = 1),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier read"),
    ),
    responses(
        (status = 200, body = Product, headers(
            ("ETag" = String, description = "\"<version>\", or \"<history>.<version>\" after a database failover; with \"-<n>\" once n of the version's holds expired"),
            ("X-Cache" = String, description = "hit, miss or bypass"),
        )),
        (status = 304, description = "The product is still at the version of If-None-Match"),
        (status = 404, description = "`not_found`: no such product, or deleted", body = ErrorBody),
        RequestLimits, TryAgain,
    )
)]
async fn get_product(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    IfNoneMatch(tags): IfNoneMatch,
) -> ApiResult<Response> {
    read_product(&state, id, &tags).await
}

/// The answer to `GET /v1/products/{id}`, through the router or past it (`ProductReads`).
async fn read_product(state: &AppState, id: i64, tags: &[HeaderValue]) -> ApiResult<Response> {
    if id < 1 {
        // Ids start at 1: nothing to look up, nothing to cache.
        return Err(ApiError::not_found(format!("product {id} does not exist")));
    }
    let ProductRead { found, status } = state.catalog.read(id).await?;
    let mut response = match found {
        None => ApiError::not_found(format!("product {id} does not exist")).into_response(),
        Some(product) => {
            let etag = product.etag();
            let mut response = if if_none_match(tags, &etag) {
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    product.body,
                )
                    .into_response()
            };
            response.headers_mut().insert(
                header::ETAG,
                HeaderValue::from_str(&etag).expect("digits and quotes"),
            );
            response
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-cache", cache_header(status));
    Ok(response)
}

/// The route label of product reads, whichever way they are served.
pub(super) const PRODUCT_READ_ROUTE: &str = "/v1/products/{id}";

/// `GET /v1/products/{id}` as a service of its own, which the server calls without going
/// through axum's router (`router::Api`): the hot read is short enough for the router's
/// matching, parameter map and per-route boxing to be the largest cost left in it
/// (BENCHMARKS.md, "2026-12-02 (late)"). It answers exactly what the routed handler answers,
/// by the same function (`read_product`); only requests `hot_read_id` recognises take this
/// way, every other one (HEAD, an id the router must judge) goes through the router.
#[derive(Clone)]
pub(super) struct ProductReads {
    state: Arc<AppState>,
}

impl ProductReads {
    pub(super) fn new(state: AppState) -> Self {
        Self {
            state: Arc::new(state),
        }
    }

    /// The id of a request this service answers: `GET /v1/products/<decimal digits>`, any
    /// query string (the route takes none, so the router ignores it too). At most 18 digits,
    /// so that every one fits an `i64`; a longer id is the router's to refuse.
    pub(super) fn hot_read_id(request: &Request) -> Option<i64> {
        if request.method() != Method::GET {
            return None;
        }
        let digits = request.uri().path().strip_prefix("/v1/products/")?;
        if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }
}

impl Service<Request> for ProductReads {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let state = self.state.clone();
        let id = Self::hot_read_id(&request);
        let tags = entity_tags(request.headers());
        Box::pin(async move {
            let answer = match id {
                Some(id) => read_product(&state, id, &tags).await,
                None => Err(ApiError::not_found("no such route")),
            };
            Ok(answer.into_response())
        })
    }
}

fn cache_header(status: CacheStatus) -> HeaderValue {
    HeaderValue::from_static(status.as_str())
}

/// The request's `If-None-Match` headers: the only ones a read looks at (axum's `HeaderMap`
/// extractor would copy every header of every read).
struct IfNoneMatch(Vec<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(entity_tags(&parts.headers)))
    }
}

/// The values of every `If-None-Match` header.
fn entity_tags(headers: &HeaderMap) -> Vec<HeaderValue> {
    let tags = headers.get_all(header::IF_NONE_MATCH);
    tags.iter().cloned().collect()
}

/// Whether `If-None-Match` headers name `etag` (or `*`). Weak tags match too (RFC 9110).
fn if_none_match(headers: &[HeaderValue], etag: &str) -> bool {
    headers
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

/// Change a product's name, description or price.
#[utoipa::path(
    patch, path = "/v1/products/{id}", tag = "products", request_body = ProductPatch,
    params(("id" = i64, Path, description = "Product id", minimum = 1)),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Product, headers(("ETag" = String, description = "The ETag a read of this version answers"))),
        (status = 404, description = "`not_found`: no such product, or deleted", body = ErrorBody),
        (status = 422, description = "`invalid_input`: no field, an unknown one, or one out of its range", body = ErrorBody),
        AdminOnly, JsonBody, RequestLimits, TryAgain,
    )
)]
async fn update_product(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(patch): ApiJson<ProductPatch>,
) -> ApiResult<Written> {
    patch.validate()?;
    let product = state.catalog.update(id, &patch).await?;
    Ok(Written::of(&state, product))
}

/// Delete a product. Every later read answers 404; its orders keep their history.
#[utoipa::path(
    delete, path = "/v1/products/{id}", tag = "products",
    params(("id" = i64, Path, description = "Product id", minimum = 1)),
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such product, or deleted already", body = ErrorBody),
        AdminOnly, RequestLimits, TryAgain,
    )
)]
async fn delete_product(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    state.catalog.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set the stock to a count, e.g. after a stock take; never below what live holds reserve.
#[utoipa::path(
    put, path = "/v1/products/{id}/stock", tag = "stock", request_body = StockLevel,
    params(("id" = i64, Path, description = "Product id", minimum = 1)),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Product, headers(("ETag" = String, description = "The ETag a read of this version answers"))),
        (status = 404, description = "`not_found`: no such product, or deleted", body = ErrorBody),
        (status = 409, description = "`insufficient_stock`: below the units live holds reserve; nothing was changed", body = ErrorBody),
        (status = 422, description = "`invalid_input`: `stock` missing or out of its range", body = ErrorBody),
        AdminOnly, JsonBody, RequestLimits, TryAgain,
    )
)]
async fn set_stock(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(level): ApiJson<StockLevel>,
) -> ApiResult<Written> {
    level.validate()?;
    let product = state.catalog.set_stock(id, level.stock).await?;
    Ok(Written::of(&state, product))
}

/// Add to or take from the stock atomically.
#[utoipa::path(
    post, path = "/v1/products/{id}/stock/adjustments", tag = "stock",
    request_body = StockAdjustment,
    params(("id" = i64, Path, description = "Product id", minimum = 1)),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Product, headers(("ETag" = String, description = "The ETag a read of this version answers"))),
        (status = 404, description = "`not_found`: no such product, or deleted", body = ErrorBody),
        (status = 409, description = "`insufficient_stock`: the stock would go below what live holds reserve (or below zero)", body = ErrorBody),
        (status = 422, description = "`invalid_input`: `delta` missing, zero, out of its range, or the stock would pass its maximum", body = ErrorBody),
        AdminOnly, JsonBody, RequestLimits, TryAgain,
    )
)]
async fn adjust_stock(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(adjustment): ApiJson<StockAdjustment>,
) -> ApiResult<Written> {
    adjustment.validate()?;
    let product = state.catalog.adjust_stock(id, adjustment.delta).await?;
    Ok(Written::of(&state, product))
}

/// The product a write produced, with the `ETag` a read of that version answers: a client
/// can revalidate against it, and a checker can order what it wrote against what it reads.
struct Written {
    product: Product,
    etag: String,
}

impl Written {
    fn of(state: &AppState, product: Product) -> Self {
        let etag = state.catalog.etag(&product);
        Self { product, etag }
    }
}

impl IntoResponse for Written {
    fn into_response(self) -> Response {
        ([(header::ETAG, self.etag)], Json(self.product)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> [HeaderValue; 1] {
        [HeaderValue::from_str(value).unwrap()]
    }

    #[test]
    fn a_page_lists_each_items_etag_as_a_read_of_it_answers() {
        let item = |history, version, lapsed| VersionedBody {
            history,
            version,
            lapsed,
            body: bytes::Bytes::from_static(b"{}"),
        };
        let items = [item(0, 3, 0), item(0, 4, 2), item(1, 5, 0), item(2, 6, 1)];
        let (body, etag) = page_body(&items, Some("c"), None);
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let expected: Vec<String> = items.iter().map(VersionedBody::etag).collect();
        assert_eq!(page["etags"], serde_json::json!(expected));
        assert_eq!(page["next_cursor"], "c");
        let (_, other) = page_body(&items[..3], Some("c"), None);
        assert_ne!(etag, other);
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        assert!(if_none_match(&headers("\"3\""), "\"3\""));
        assert!(if_none_match(&headers("\"1\", W/\"3\""), "\"3\""));
        assert!(if_none_match(&headers("*"), "\"3\""));
        assert!(!if_none_match(&headers("\"2\""), "\"3\""));
        assert!(!if_none_match(&[], "\"3\""));
    }

    #[test]
    fn only_plain_product_reads_take_the_shortcut() {
        let id = |method: Method, target: &str| {
            let request = Request::builder()
                .method(method)
                .uri(target)
                .body(axum::body::Body::empty())
                .unwrap();
            ProductReads::hot_read_id(&request)
        };
        assert_eq!(id(Method::GET, "/v1/products/42"), Some(42));
        assert_eq!(id(Method::GET, "/v1/products/0042?x=1"), Some(42));
        assert_eq!(id(Method::GET, "/v1/products/0"), Some(0));
        assert_eq!(
            id(Method::GET, "/v1/products/999999999999999999"),
            Some(999_999_999_999_999_999)
        );
        for target in [
            "/v1/products/",
            "/v1/products/+42",
            "/v1/products/-1",
            "/v1/products/4%32",
            "/v1/products/42/",
            "/v1/products/abc",
            "/v1/products/9999999999999999999",
            "/v1/products",
            "/v1/products/42/stock",
        ] {
            assert_eq!(id(Method::GET, target), None, "{target}");
        }
        assert_eq!(id(Method::HEAD, "/v1/products/42"), None);
        assert_eq!(id(Method::DELETE, "/v1/products/42"), None);
    }
}
