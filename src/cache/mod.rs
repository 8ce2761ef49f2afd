//! The seam between the product read/write paths and Redis.
//!
//! `ProductCache` is the one place that decides how a product read is served and what a
//! committed write does to the cache. Each strategy is a module of its own.

mod none;

use std::{fmt, str::FromStr};

use bytes::Bytes;
use sqlx::PgPool;

use crate::{
    db,
    error::ApiResult,
    product::{Product, ProductState},
};

/// How product details are cached (`SHOPNOW_CACHE_STRATEGY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStrategy {
    /// Every read goes to Postgres.
    None,
    /// Read-through with a TTL; writes leave the cache alone (the article's bug).
    Ttl,
    /// `ttl` plus a DEL after each committed write; loses the slow-reader race.
    Delete,
    /// Version pointer and versioned payloads; never older than the last acknowledged write.
    Versioned,
}

impl CacheStrategy {
    pub const ALL: [CacheStrategy; 4] = [Self::None, Self::Ttl, Self::Delete, Self::Versioned];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Ttl => "ttl",
            Self::Delete => "delete",
            Self::Versioned => "versioned",
        }
    }
}

impl fmt::Display for CacheStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CacheStrategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|strategy| strategy.as_str() == s)
            .ok_or_else(|| "expected one of versioned, ttl, delete, none".to_string())
    }
}

/// Where a read's answer came from; sent as `X-Cache`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    /// The cache was not used, or not reachable.
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

/// What `/readyz` reports for the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheHealth {
    Ok,
    /// Redis does not answer; reads and writes go on from Postgres.
    Degraded,
    /// The strategy uses no cache.
    Disabled,
}

impl fmt::Display for CacheHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "ok",
            Self::Degraded => "degraded",
            Self::Disabled => "disabled",
        })
    }
}

/// A product read as the HTTP layer serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRead {
    pub found: Option<VersionedBody>,
    pub status: CacheStatus,
}

/// The JSON of one version of a product, ready to send as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedBody {
    pub version: i64,
    pub body: Bytes,
}

impl VersionedBody {
    pub fn of(product: &Product) -> Self {
        Self {
            version: product.version,
            body: Bytes::from(serde_json::to_vec(product).expect("a product serialises")),
        }
    }
}

/// The cache strategy in force, with what it needs to run.
pub enum ProductCache {
    None,
}

impl ProductCache {
    pub fn strategy(&self) -> CacheStrategy {
        match self {
            Self::None => CacheStrategy::None,
        }
    }

    pub async fn health(&self) -> CacheHealth {
        match self {
            Self::None => CacheHealth::Disabled,
        }
    }

    /// Reads product `id` for `GET /v1/products/{id}`.
    pub async fn read(&self, db: &PgPool, id: i64) -> ApiResult<ProductRead> {
        match self {
            Self::None => none::read(db, id).await,
        }
    }

    /// Tells the cache about a committed change. Called after commit and before the client
    /// gets its answer; it never fails the request, whatever Redis does.
    pub async fn publish(&self, _state: &ProductState) {
        match self {
            Self::None => {}
        }
    }
}

/// A read straight from Postgres, shared by every strategy for its misses and bypasses.
async fn read_from_database(db: &PgPool, id: i64) -> ApiResult<Option<VersionedBody>> {
    let mut conn = db.acquire().await?;
    Ok(match db::products::load_state(&mut conn, id).await? {
        Some(ProductState::Live(product)) => Some(VersionedBody::of(&product)),
        Some(ProductState::Deleted { .. }) | None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_round_trip() {
        for strategy in CacheStrategy::ALL {
            assert_eq!(strategy.as_str().parse::<CacheStrategy>(), Ok(strategy));
        }
        assert!("TTL".parse::<CacheStrategy>().is_err());
    }
}
