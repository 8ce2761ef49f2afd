//! The admin bearer token that guards every write except orders.

use std::sync::Arc;

use axum::{extract::FromRequestParts, http::request::Parts, http::StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{
    error::{ApiError, ErrorCode},
    AppState,
};

/// The configured admin token, kept as a digest so comparing it takes the same time whatever
/// the guess, its length included.
#[derive(Clone)]
pub struct AdminToken(Option<Arc<[u8; 32]>>);

impl AdminToken {
    pub fn new(token: Option<&str>) -> Self {
        Self(token.map(|t| Arc::new(digest(t))))
    }

    fn check(&self, header: Option<&str>) -> Result<(), ApiError> {
        let Some(expected) = &self.0 else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::AdminDisabled,
                "admin writes are disabled: set SHOPNOW_ADMIN_TOKEN on the server to enable them",
            ));
        };
        let presented = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("send the admin token as Authorization: Bearer <token>")
            })?;
        if bool::from(digest(presented).ct_eq(expected.as_ref())) {
            Ok(())
        } else {
            Err(ApiError::unauthorized("the admin token is wrong"))
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Extracting `Admin` in a handler makes the route admin-only.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        state.admin_token.check(header).map(|()| Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_token_passes() {
        let token = AdminToken::new(Some("s3cret"));
        assert!(token.check(Some("Bearer s3cret")).is_ok());
        for header in [
            None,
            Some("Bearer "),
            Some("Bearer s3cre"),
            Some("s3cret"),
            Some("Basic s3cret"),
        ] {
            assert_eq!(
                token.check(header).unwrap_err().status(),
                StatusCode::UNAUTHORIZED
            );
        }
    }

    #[test]
    fn no_configured_token_forbids_every_admin_write() {
        let token = AdminToken::new(None);
        assert_eq!(
            token.check(Some("Bearer anything")).unwrap_err().status(),
            StatusCode::FORBIDDEN
        );
    }
}
