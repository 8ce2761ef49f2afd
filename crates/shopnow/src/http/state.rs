//! What every handler may need. It imports no route, so routes depend on it and never the
//! other way round.

use std::sync::Arc;

use axum::extract::FromRef;

use super::auth::AdminToken;
use crate::{catalog::Catalog, lifecycle::Lifecycle, rate_limit::RateLimiter};

/// Everything a handler may need. Cheap to clone: each field is a handle.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(super) catalog: Catalog,
    pub(super) admin_token: AdminToken,
    pub(super) lifecycle: Lifecycle,
    /// How long a hold lasts when its request names no `ttl_seconds`.
    pub(super) hold_ttl_secs: u64,
    /// The writes each client may send (`rate_limits`).
    pub(super) rate_limiter: Arc<RateLimiter>,
}

impl AppState {
    pub(crate) fn new(
        catalog: Catalog,
        admin_token: Option<&str>,
        lifecycle: Lifecycle,
        hold_ttl_secs: u64,
        rate_limiter: RateLimiter,
    ) -> Self {
        Self {
            catalog,
            admin_token: AdminToken::new(admin_token),
            lifecycle,
            hold_ttl_secs,
            rate_limiter: Arc::new(rate_limiter),
        }
    }
}

impl FromRef<AppState> for AdminToken {
    fn from_ref(state: &AppState) -> Self {
        state.admin_token.clone()
    }
}
