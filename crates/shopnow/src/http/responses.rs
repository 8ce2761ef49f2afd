//! Responses many operations share, for their `#[utoipa::path]`: what any request may be
//! answered about its head, its JSON body, a missing admin token, or a dependency that cannot
//! serve now.

use axum::http::{header, HeaderName, HeaderValue};

use super::error::ErrorBody;

/// An order or a hold is one customer's, and its answer may carry its access token: no shared
/// cache (a proxy, a CDN) may keep it, and no browser may store it on disk.
pub(super) const PRIVATE: (HeaderName, HeaderValue) = (
    header::CACHE_CONTROL,
    HeaderValue::from_static("private, no-store"),
);

/// What every operation may answer about the request's head.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(super) enum RequestLimits {
    /// `uri_too_long`: the request target (path and query) is longer than 8 KiB.
    #[response(status = 414)]
    UriTooLong(ErrorBody),
    /// `header_too_large`: the request's headers are larger than `SHOPNOW_HTTP_MAX_HEADER_BYTES`.
    #[response(status = 431)]
    HeaderTooLarge(ErrorBody),
}

/// The 503 every operation may answer: retry after `Retry-After`.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(super) enum TryAgain {
    /// `timeout` (the request took longer than `SHOPNOW_REQUEST_TIMEOUT_MS`), `unavailable` (the
    /// database is unreachable or out of connections) or `busy` (too many writes of one product
    /// in flight, or its row locked too long). Nothing was changed, except after a `timeout`: a
    /// write under way still finishes. Retry after `Retry-After` seconds.
    #[response(status = 503, headers(("Retry-After" = u32, description = "Seconds to wait before retrying")))]
    Unavailable(ErrorBody),
}

/// The 429 of the writes counted per client (`rate_limits`), and the headers of every answer
/// they count.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(super) enum RateLimited {
    /// `too_many_requests`: this client address sent more holds, orders, releases and
    /// cancellations than `SHOPNOW_RATE_LIMIT_BURST` at once (refilled at
    /// `SHOPNOW_RATE_LIMIT_PER_MINUTE`); nothing was changed. Retry after `Retry-After` seconds.
    /// Every answer of these operations carries `RateLimit-Policy` (`"writes";q=<burst>;w=<s>`)
    /// and `RateLimit` (`"writes";r=<left>;t=<s until whole>`).
    #[response(status = 429, headers(
        ("Retry-After" = u32, description = "Seconds to wait before the next write"),
        ("RateLimit" = String, description = "What this client has left now"),
        ("RateLimit-Policy" = String, description = "The allowance per client address"),
    ))]
    TooManyRequests(ErrorBody),
}

/// What an operation with a JSON body may answer about the body itself.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(super) enum JsonBody {
    /// `malformed_json`: the body is not JSON (or is cut off inside it); `bad_request`: a
    /// chunked body that breaks its framing.
    #[response(status = 400)]
    MalformedJson(ErrorBody),
    /// `request_timeout`: the body did not arrive within `SHOPNOW_HTTP_BODY_READ_TIMEOUT_MS`.
    #[response(status = 408)]
    RequestTimeout(ErrorBody),
    /// `payload_too_large`: the body is larger than `SHOPNOW_BODY_LIMIT_BYTES`.
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// `unsupported_media_type`: the body is not sent as `Content-Type: application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
}

/// What an admin-only operation answers without the admin token.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(super) enum AdminOnly {
    /// `unauthorized`: no `Authorization: Bearer <SHOPNOW_ADMIN_TOKEN>`, or a wrong token.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// `admin_disabled`: the server has no `SHOPNOW_ADMIN_TOKEN`, so admin writes are off.
    #[response(status = 403)]
    AdminDisabled(ErrorBody),
}
