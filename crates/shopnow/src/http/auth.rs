//! Who may do what: the admin bearer token guards every write except orders and holds, and an
//! order or a hold is read and changed with the access token its creation answered (or the
//! admin token).

use std::sync::Arc;

use super::error::{ApiError, ErrorCode};
use crate::model::{digest, digests_equal, Bearer};
use axum::{
    extract::{FromRef, FromRequestParts, OptionalFromRequestParts},
    http::{header::AUTHORIZATION, request::Parts, HeaderMap, StatusCode},
};

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
            .is_some_and(|expected| digests_equal(&digest(presented), expected))
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

/// The bearer of an order's or a hold's access token, or the admin: the routes compare the
/// token with the one the order or hold was created with (`Bearer::opens`).
pub(super) struct TokenBearer(pub(super) Bearer);

impl<S: Send + Sync> FromRequestParts<S> for TokenBearer
where
    AdminToken: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let presented = bearer_token(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized(
                "send the access_token its creation answered as Authorization: Bearer <token>",
            )
        })?;
        Ok(Self(bearer(&AdminToken::from_ref(state), presented)))
    }
}

/// Orders take a bearer token only when placed from a hold.
impl<S: Send + Sync> OptionalFromRequestParts<S> for TokenBearer
where
    AdminToken: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, ApiError> {
        Ok(bearer_token(&parts.headers)
            .map(|presented| Self(bearer(&AdminToken::from_ref(state), presented))))
    }
}

fn bearer(admin: &AdminToken, presented: &str) -> Bearer {
    if admin.matches(presented) {
        Bearer::Admin
    } else {
        Bearer::Token(presented.to_string())
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
}
