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

/// The `Idempotency-Key` header, if sent and strong enough (`IDEMPOTENCY_KEY_RULE`), in its
/// canonical form: a UUID in lower case with hyphens, whatever form it was sent in (the same
/// UUID in upper and lower case was two keys, so a retry that changed the case placed a second
/// order); anything else as sent.
pub(super) fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(strong_key)
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(ErrorCode::InvalidIdempotencyKey, IDEMPOTENCY_KEY_RULE)
        })
}

/// `key` in its canonical form, if it is strong enough. A UUID must be a v4 (the other
/// versions carry clocks, addresses or names: guessable) whose hex digits are not plainly
/// chosen by hand: at least 6 distinct ones, and not mostly runs (`steps`; random UUIDs fail
/// either less than once in 10^9). Anything else must be a base64url secret.
fn strong_key(key: &str) -> Option<String> {
    match uuid::Uuid::try_parse(key) {
        Ok(uuid) => {
            let canonical = uuid.hyphenated().to_string();
            let digits: Vec<u8> = canonical.bytes().filter(u8::is_ascii_hexdigit).collect();
            (uuid.get_version() == Some(uuid::Version::Random)
                && uuid.get_variant() == uuid::Variant::RFC4122
                && distinct(digits.iter().copied()) >= 6
                && steps(&digits) < MOST_UUID_STEPS)
                .then_some(canonical)
        }
        Err(_) => is_base64url_secret(key).then(|| key.to_owned()),
    }
}

/// Steps a UUID's 32 hex digits may take (of 31): 22 or more happen to a random one about 3
/// times in 10^10 (binomial, 3 chances in 16 per pair); `12345678-1234-4234-8234-123456789abc`
/// takes 25.
const MOST_UUID_STEPS: usize = 22;

/// 22 to 255 base64url characters with at least 10 distinct ones (22 random ones have fewer
/// about 2 times in 10^9), of which fewer than half of the neighbours are steps (22 or 23 random
/// ones have as many about once in 10^9): `aaaa…`, `abcdefghijklmnopqrstuv` or a counter
/// padded to length (`user1234-order-00000001`) is refused.
fn is_base64url_secret(key: &str) -> bool {
    (MIN_BASE64URL_KEY_LEN..=MAX_IDEMPOTENCY_KEY_LEN).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && distinct(key.bytes()) >= 10
        && steps(key.as_bytes()) * 2 < key.len() - 1
}

/// Neighbours that are the same symbol or the next or previous one (`aa`, `ab`, `ba`, `00`,
/// `01`): what keys typed, counted or padded by hand are made of, and random ones rarely.
fn steps(symbols: &[u8]) -> usize {
    symbols
        .windows(2)
        .filter(|pair| pair[0].abs_diff(pair[1]) <= 1)
        .count()
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
        idempotency_key(&headers)
    }

    #[test]
    fn idempotency_keys_must_be_random_uuids_or_long_base64url_secrets() {
        for strong in ["Jm2Gv_0qXc-T8r1LwZ4yPA", &uuid::Uuid::new_v4().to_string()] {
            assert_eq!(key(strong).unwrap().as_deref(), Some(strong), "{strong}");
        }
        // One UUID, one key, whatever its form.
        for form in [
            "5f2c1e0a-8b4d-4c6e-9f7a-3d2b1c0e9f8a",
            "5F2C1E0A-8B4D-4C6E-9F7A-3D2B1C0E9F8A",
            "5f2c1e0a8b4d4c6e9f7a3d2b1c0e9f8a",
            "{5f2c1e0a-8b4d-4c6e-9f7a-3d2b1c0e9f8a}",
        ] {
            assert_eq!(
                key(form).unwrap().as_deref(),
                Some("5f2c1e0a-8b4d-4c6e-9f7a-3d2b1c0e9f8a"),
                "{form}"
            );
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
            // What a probe got past the screen before: runs and counters.
            "abcdefghijklmnopqrstuv",
            "0123456789012345678901",
            "user1234-order-00000001",
            "12345678-1234-4234-8234-123456789abc",
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
            assert!(strong_key(&uuid).is_some(), "{uuid}");
            let secret: String = (0..22)
                .map(|_| {
                    let alphabet =
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                    alphabet[rand::random_range(0..64)] as char
                })
                .collect();
            assert!(strong_key(&secret).is_some(), "{secret}");
        }
    }
}
