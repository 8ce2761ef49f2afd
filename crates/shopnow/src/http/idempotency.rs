//! `Idempotency-Key`: what makes a retry of an order or a hold safe, and what a key must be.

use axum::{
    http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;

use super::{
    error::{ApiError, ApiResult, ErrorCode},
    responses::PRIVATE,
};

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// A retry with the key and the same request gets the access token back, so a key must
/// be a secret as strong as the token: at least 122 random bits. The forms that can carry them
/// and be checked: a UUID v4, or 22 to 255 base64url characters (16 random bytes or more).
const MIN_BASE64URL_KEY_LEN: usize = 22;
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
const IDEMPOTENCY_KEY_RULE: &str = "Idempotency-Key must be a random UUID v4 (such as \
    crypto.randomUUID() makes) or 22 to 255 random base64url characters (such as \
    secrets.token_urlsafe(16) makes): anyone who guesses a key and the request gets the \
    order's or hold's access token back";

/// The answer of a create that an `Idempotency-Key` guards (an order, a hold): 201 with its
/// `Location`, private (it carries an access token), and `Idempotent-Replayed: true` when it is
/// a retry that changed nothing.
pub(super) fn created(location: String, body: impl Serialize, replayed: bool) -> Response {
    let mut response = (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        [PRIVATE],
        Json(body),
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// The `Idempotency-Key` header, if sent and strong enough (`IDEMPOTENCY_KEY_RULE`).
pub(super) fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<&str>> {
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
