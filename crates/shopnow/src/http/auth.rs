//! Who may do what: the admin bearer token guards every write except orders, and an order is
//! read with the access token its creation answered (or the admin token).

use std::sync::Arc;

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{header::AUTHORIZATION, request::Parts, HeaderMap, StatusCode},
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{ApiError, ErrorCode};

/// The configured admin token, kept as a digest so comparing it takes the same time whatever
/// the guess, its length included.
#[derive(Clone)]
pub(super) struct AdminToken(Option<Arc<[u8; 32]>>);

impl AdminToken {
    pub(super) fn new(token: Option<&str>) -> Self {
        Self(token.map(|t| Arc::new(digest(t))))
    }

    fn matches(&self, presented: &str) -> bool {
        self.0
            .as_ref()
            .is_some_and(|expected| secrets_equal_digests(&digest(presented), expected))
    }

    fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.0.is_none() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::AdminDisabled,
                "admin writes are disabled: set SHOPNOW_ADMIN_TOKEN on the server to enable them",
            ));
        }
        let presented = bearer_token(headers).ok_or_else(|| {
            ApiError::unauthorized("send the admin token as Authorization: Bearer <token>")
        })?;
        if self.matches(presented) {
            Ok(())
        } else {
            Err(ApiError::unauthorized("the admin token is wrong"))
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn secrets_equal_digests(a: &[u8; 32], b: &[u8; 32]) -> bool {
    bool::from(a.ct_eq(b))
}

/// Whether two secrets are equal, in a time that depends on neither.
pub(super) fn secrets_equal(a: &str, b: &str) -> bool {
    secrets_equal_digests(&digest(a), &digest(b))
}

/// The token of `Authorization: Bearer <token>`. The scheme is case-insensitive (RFC 9110).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Extracting `Admin` in a handler makes the route admin-only. Any state that holds the admin
/// token will do (`FromRef`), so this module needs to know no state.
pub(super) struct Admin;

impl<S: Send + Sync> FromRequestParts<S> for Admin
where
    AdminToken: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        AdminToken::from_ref(state)
            .check(&parts.headers)
            .map(|()| Admin)
    }
}

/// Who reads an order: the admin, or a bearer of some token that may be the order's own.
pub(super) enum OrderReader {
    Admin,
    Bearer(String),
}

impl OrderReader {
    /// Whether this reader may read an order whose access token is `token` (orders placed
    /// before access tokens existed have none: only the admin reads them).
    pub(super) fn may_read(&self, token: Option<&str>) -> bool {
        match (self, token) {
            (Self::Admin, _) => true,
            (Self::Bearer(presented), Some(token)) => secrets_equal(presented, token),
            (Self::Bearer(_), None) => false,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for OrderReader
where
    AdminToken: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let presented = bearer_token(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized(
                "send the order's access_token (from its creation) as Authorization: Bearer <token>",
            )
        })?;
        Ok(if AdminToken::from_ref(state).matches(presented) {
            Self::Admin
        } else {
            Self::Bearer(presented.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn only_the_configured_token_passes_whatever_the_scheme_case() {
        let token = AdminToken::new(Some("s3cret-token-0123"));
        for accepted in [
            "Bearer s3cret-token-0123",
            "bearer s3cret-token-0123",
            "BEARER  s3cret-token-0123 ",
        ] {
            assert!(token.check(&headers(Some(accepted))).is_ok(), "{accepted}");
        }
        for header in [
            None,
            Some("Bearer "),
            Some("Bearer s3cret-token-012"),
            Some("s3cret-token-0123"),
            Some("Basic s3cret-token-0123"),
        ] {
            assert_eq!(
                token.check(&headers(header)).unwrap_err().status(),
                StatusCode::UNAUTHORIZED,
                "{header:?}"
            );
        }
    }

    #[test]
    fn no_configured_token_forbids_every_admin_write() {
        let token = AdminToken::new(None);
        assert_eq!(
            token
                .check(&headers(Some("Bearer anything")))
                .unwrap_err()
                .status(),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn an_order_is_read_by_its_token_or_the_admin() {
        let bearer = OrderReader::Bearer("a-token".into());
        assert!(bearer.may_read(Some("a-token")));
        assert!(!bearer.may_read(Some("another")));
        assert!(!bearer.may_read(None));
        assert!(OrderReader::Admin.may_read(None));
    }
}
