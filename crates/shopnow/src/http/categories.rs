//! `/v1/categories`: the tree of categories that list products. Read by anyone; changed by
//! the admin token.

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::Admin,
    error::{ApiError, ApiResult, ErrorBody},
    extract::{ApiJson, ApiPath},
    responses::{AdminOnly, JsonBody, RequestLimits, TryAgain},
    state::AppState,
};
use crate::model::{validate_slug, Category, CategoryPatch, NewCategory};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_categories, create_category))
        .routes(routes!(get_category, update_category, delete_category))
}

/// Every category, by slug: each names its parent and its children, so a client builds the
/// tree (or a breadcrumb) from one answer. At most 10,000 categories, 8 levels deep.
#[utoipa::path(
    get, path = "/v1/categories", tag = "categories",
    responses((status = 200, body = Vec<Category>), RequestLimits, TryAgain)
)]
async fn list_categories(State(state): State<AppState>) -> ApiResult<Json<Vec<Category>>> {
    Ok(Json(state.catalog.categories().await?))
}

/// One category.
#[utoipa::path(
    get, path = "/v1/categories/{slug}", tag = "categories",
    params(("slug" = String, Path, description = "The category's slug")),
    responses(
        (status = 200, body = Category),
        (status = 404, description = "`not_found`: no category has this slug", body = ErrorBody),
        RequestLimits, TryAgain,
    )
)]
async fn get_category(
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
) -> ApiResult<Json<Category>> {
    known_form(&slug)?;
    Ok(Json(state.catalog.category(&slug).await?))
}

/// Create a category, as a root or under a parent.
#[utoipa::path(
    post, path = "/v1/categories", tag = "categories", request_body = NewCategory,
    security(("admin_token" = [])),
    responses(
        (status = 201, body = Category, headers(("Location" = String, description = "URL of the new category"))),
        (status = 409, description = "`category_conflict`: the slug is taken, the parent is at the deepest level (8), or the shop has 10,000 categories", body = ErrorBody),
        (status = 422, description = "`invalid_input`: a slug or name out of form, or an unknown parent", body = ErrorBody),
        AdminOnly, JsonBody, RequestLimits, TryAgain,
    )
)]
async fn create_category(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(new): ApiJson<NewCategory>,
) -> ApiResult<Response> {
    new.validate()?;
    let category = state.catalog.create_category(&new).await?;
    let location = format!("/v1/categories/{}", category.slug);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(category),
    )
        .into_response())
}

/// Rename a category, move it (with everything under it) to another parent, or both.
///
/// A move changes which category pages list the products under it: each of them is a new
/// version (its `listed_in` changes), published before this answers, like any product change.
/// The slug never changes.
#[utoipa::path(
    patch, path = "/v1/categories/{slug}", tag = "categories", request_body = CategoryPatch,
    security(("admin_token" = [])),
    params(("slug" = String, Path, description = "The category's slug")),
    responses(
        (status = 200, body = Category),
        (status = 404, description = "`not_found`: no category has this slug", body = ErrorBody),
        (status = 409, description = "`category_conflict`: the new parent is the category itself or under it, or the move would make the tree deeper than 8 levels", body = ErrorBody),
        (status = 422, description = "`invalid_input`: nothing to change, a name out of form, or an unknown parent", body = ErrorBody),
        AdminOnly, JsonBody, RequestLimits, TryAgain,
    )
)]
async fn update_category(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(slug): ApiPath<String>,
    ApiJson(patch): ApiJson<CategoryPatch>,
) -> ApiResult<Json<Category>> {
    known_form(&slug)?;
    patch.validate()?;
    Ok(Json(state.catalog.update_category(&slug, &patch).await?))
}

/// Delete a category that lists nothing: it must have no category under it and no live
/// product in it (move or delete those first; deleting does not move them for you, so that
/// nothing leaves a shop's navigation by surprise).
#[utoipa::path(
    delete, path = "/v1/categories/{slug}", tag = "categories",
    security(("admin_token" = [])),
    params(("slug" = String, Path, description = "The category's slug")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no category has this slug", body = ErrorBody),
        (status = 409, description = "`category_conflict`: categories or products are still in it", body = ErrorBody),
        AdminOnly, RequestLimits, TryAgain,
    )
)]
async fn delete_category(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(slug): ApiPath<String>,
) -> ApiResult<StatusCode> {
    known_form(&slug)?;
    state.catalog.delete_category(&slug).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A slug of no possible category answers 404 without a query.
fn known_form(slug: &str) -> Result<(), ApiError> {
    validate_slug(slug)
        .map_err(|_| ApiError::not_found(format!("category {slug:?} does not exist")))
}
