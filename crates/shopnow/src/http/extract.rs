//! Extractors that answer bad input with the API's JSON error instead of axum's plain text.

use axum::{
    body::Bytes,
    extract::{
        rejection::{JsonRejection, PathRejection, QueryRejection},
        FromRequest, FromRequestParts, Request,
    },
    http::{header, HeaderMap, StatusCode},
};

use super::error::{ApiError, ErrorCode};

/// JSON body. Malformed JSON (cut off included) is 400, wrong types, unknown or missing fields
/// 422, too large 413.
#[derive(Debug)]
pub(super) struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(not_json());
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(JsonRejection::from)?;
        // The syntax first: serde stops at the first field it cannot accept, so `{"a":`
        // would otherwise read as an unknown field (422) instead of a cut-off document (400).
        if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
            return Err(ApiError::bad_request(
                ErrorCode::MalformedJson,
                format!("the body is not valid JSON: {error}"),
            ));
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&body)?;
        Ok(Self(value))
    }
}

/// Whether the request says its body is JSON (`application/json`, or `application/*+json`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

/// Path parameters. A segment that does not parse (`/v1/products/abc`) is 404: no such resource.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(super) struct ApiPath<T>(pub T);

/// Query string. Values that do not parse are 422.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(super) struct ApiQuery<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => ApiError::invalid(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::bad_request(ErrorCode::MalformedJson, e.body_text())
            }
            JsonRejection::MissingJsonContentType(_) => not_json(),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::PayloadTooLarge,
                    "the request body is larger than this server accepts",
                )
            }
            other => ApiError::bad_request(ErrorCode::BadRequest, other.body_text()),
        }
    }
}

fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UnsupportedMediaType,
        "send the body with Content-Type: application/json",
    )
}

/// The parser's own words (``Cannot parse `\u{0}` to a `i64` ``) tell a client nothing it can
/// act on and show how the server is built: the answer says only that nothing is there.
impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        ApiError::not_found("no such resource: an id in this path is not one this API gives out")
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::invalid(rejection.body_text())
    }
}
