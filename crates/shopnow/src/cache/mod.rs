//! The seam between the product read/write paths and Redis.
//!
//! `ProductCache` is the one place that decides how a product read is served and what a
//! committed write does to the cache. Each strategy is a module of its own, readable alone,
//! behind the `Strategy` trait:
//!
//! - [`none`]: every read goes to Postgres;
//! - [`ttl`]: read-through with a TTL, writes leave the cache alone (the article's bug);
//! - [`delete`]: `ttl` plus a DEL after each write (loses the slow-reader race);
//! - [`versioned`]: never older than the last acknowledged write (the default).
//!
//! Adding a strategy: a module, a variant of `CacheStrategy`, and its arm in
//! `CacheStrategy::build`.

#[cfg(feature = "article-design")]
mod article;
mod backend;
mod delete;
mod none;
pub mod reachability;
mod redis_client;
mod replication;
mod single_flight;
mod ttl;
mod versioned;

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::future::BoxFuture;
use sqlx::PgPool;

use self::backend::CacheBackend;
pub use shopnow_contract::ProductKeys;

pub use self::{
    backend::CacheStats,
    redis_client::{CacheError, RedisClient, RedisConfig, RedisTlsFiles},
    versioned::{Published, CONVERGENCE_BOUND},
};
use crate::{
    error::Result,
    hooks::Hooks,
    model::{Product, ProductState},
};

/// How product details are cached (`SHOPNOW_CACHE_STRATEGY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStrategy {
    None,
    Ttl,
    Delete,
    Versioned,
    /// The article's design (version from Postgres, payload from Redis). Not configurable:
    /// only the benchmark selects it, through a hidden `serve` flag.
    #[cfg(feature = "article-design")]
    Article,
}

impl CacheStrategy {
    /// The strategies `SHOPNOW_CACHE_STRATEGY` accepts.
    pub const ALL: [CacheStrategy; 4] = [Self::None, Self::Ttl, Self::Delete, Self::Versioned];

    pub fn as_str(self) -> &'static str {
        use shopnow_contract::strategies;
        match self {
            Self::None => strategies::NONE,
            Self::Ttl => strategies::TTL,
            Self::Delete => strategies::DELETE,
            Self::Versioned => strategies::VERSIONED,
            #[cfg(feature = "article-design")]
            Self::Article => "article",
        }
    }

    /// The one place a strategy is built.
    fn build(self, backend: CacheBackend) -> Box<dyn Strategy> {
        match self {
            Self::None => Box::new(none::NoCache::new(backend)),
            Self::Ttl => Box::new(ttl::TtlCache::new(backend)),
            Self::Delete => Box::new(delete::DeleteCache::new(backend)),
            Self::Versioned => Box::new(versioned::VersionedCache::new(backend)),
            #[cfg(feature = "article-design")]
            Self::Article => Box::new(article::ArticleCache::new(backend)),
        }
    }

    /// Whether the strategy keeps copies in Redis.
    fn uses_redis(self) -> bool {
        self != Self::None
    }
}

impl fmt::Display for CacheStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CacheStrategy {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|strategy| strategy.as_str() == s)
            .ok_or_else(|| format!("expected one of {}", Self::ALL.map(Self::as_str).join(", ")))
    }
}

/// The cache's settings (`SHOPNOW_CACHE_*`).
#[derive(Clone, Debug)]
pub struct CacheConfig {
    pub strategy: CacheStrategy,
    /// Every Redis key starts with this, so several deployments or tests can share one Redis.
    pub prefix: String,
    /// TTL of `ttl`/`delete` entries, and the safety TTL of every `versioned` key.
    pub ttl: Duration,
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
    /// `None`: no such product, or deleted.
    pub found: Option<VersionedBody>,
    pub status: CacheStatus,
}

/// The JSON of one version of a product, ready to send as it is, and the database history the
/// version belongs to (for the ETag; see `shopnow_contract::stamps`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedBody {
    pub history: i64,
    pub version: i64,
    pub body: Bytes,
}

impl VersionedBody {
    pub fn of(product: &Product) -> Self {
        Self {
            history: product.history,
            version: product.version,
            body: Bytes::from(serde_json::to_vec(product).expect("a product serialises")),
        }
    }

    /// `"<version>"`, or `"<history>.<version>"` after a failover: one ETag, one content.
    pub fn etag(&self) -> String {
        shopnow_contract::stamps::etag(self.history, self.version)
    }

    /// The body of a product state: a deleted product has none.
    pub fn of_state(state: &ProductState) -> Option<Self> {
        match state {
            ProductState::Live(product) => Some(Self::of(product)),
            ProductState::Deleted { .. } => None,
        }
    }
}

/// A product's copy in the cache as it is, read without side effects (for the sampler).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedCopy {
    /// The database history the copy was read from, and its version in it.
    pub history: i64,
    pub version: i64,
    /// The product JSON, or `None` for a deletion's tombstone.
    pub payload: Option<Bytes>,
}

impl CachedCopy {
    /// What copies are ordered by: history first, then version.
    pub fn stamp(&self) -> i64 {
        shopnow_contract::stamps::stamp(self.history, self.version)
    }
}

/// What a cache strategy does; each lives in a module of its own. Strategies that leave writes
/// alone or keep nothing to inspect keep the defaults.
trait Strategy: Send + Sync {
    /// Serves `GET /v1/products/{id}`.
    fn read<'a>(&'a self, db: &'a PgPool, id: i64) -> BoxFuture<'a, Result<ProductRead>>;

    /// Whether committed changes must reach the cache (and so go through the outbox).
    fn publishes(&self) -> bool {
        false
    }

    /// Tells the cache about a committed change.
    fn publish<'a>(&'a self, _state: &'a ProductState) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async { Ok(()) })
    }

    /// The cached copy of a product as it is, read without side effects (for the sampler).
    fn peek(&self, _id: i64) -> BoxFuture<'_, Result<Option<CachedCopy>, CacheError>> {
        Box::pin(async { Ok(None) })
    }

    /// Drops a copy the sampler found wrong.
    fn drop_copy(&self, _id: i64) -> BoxFuture<'_, Result<(), CacheError>> {
        Box::pin(async { Ok(()) })
    }

    /// Watches the database's history until aborted, for a strategy that orders copies by it;
    /// the others return at once.
    fn watch_history(&self, _db: PgPool) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// The cache strategy in force, with what it needs to run. Cheap to clone.
#[derive(Clone)]
pub struct ProductCache {
    strategy: CacheStrategy,
    backend: CacheBackend,
    imp: Arc<dyn Strategy>,
}

impl ProductCache {
    /// Builds the configured strategy. Does not contact Redis: an instance starts while Redis
    /// is down and uses it as soon as it answers.
    pub fn new(cache: &CacheConfig, redis: &RedisConfig, hooks: Hooks) -> anyhow::Result<Self> {
        let client = if cache.strategy.uses_redis() {
            Some(RedisClient::new(redis)?)
        } else {
            None
        };
        let backend = CacheBackend::new(
            cache.strategy,
            client,
            cache.prefix.clone(),
            cache.ttl,
            hooks,
        );
        Ok(Self {
            strategy: cache.strategy,
            imp: cache.strategy.build(backend.clone()).into(),
            backend,
        })
    }

    pub fn strategy(&self) -> CacheStrategy {
        self.strategy
    }

    pub fn stats(&self) -> Arc<CacheStats> {
        self.backend.stats.clone()
    }

    pub async fn health(&self) -> CacheHealth {
        match self.reach_redis().await {
            None => CacheHealth::Disabled,
            Some(Ok(())) => CacheHealth::Ok,
            Some(Err(_)) => CacheHealth::Degraded,
        }
    }

    /// Pings Redis: `None` when the strategy uses none, else whether it answered, or why not.
    pub async fn reach_redis(&self) -> Option<Result<(), CacheError>> {
        Some(self.backend.redis_client()?.ping().await)
    }

    /// Looks at Redis's replicas, so that publishes wait for one when there are some
    /// (`RedisClient::observe_replication`); nothing for a strategy without Redis.
    pub async fn observe_replication(&self) -> Result<(), CacheError> {
        match self.backend.redis_client() {
            Some(redis) => redis.observe_replication().await,
            None => Ok(()),
        }
    }

    /// Reads product `id` for `GET /v1/products/{id}`.
    pub async fn read(&self, db: &PgPool, id: i64) -> Result<ProductRead> {
        let read = self.imp.read(db, id).await?;
        self.backend.metrics.count_read(&read);
        Ok(read)
    }

    /// The cached copy of product `id`, if any, read without side effects.
    pub async fn peek(&self, id: i64) -> Result<Option<CachedCopy>, CacheError> {
        self.imp.peek(id).await
    }

    /// Drops a copy the sampler found wrong; the next read fills it from Postgres.
    pub async fn repair(&self, id: i64) -> Result<(), CacheError> {
        self.imp.drop_copy(id).await
    }

    /// Whether committed changes must reach the cache (and so go through the outbox).
    pub fn publishes(&self) -> bool {
        self.imp.publishes()
    }

    /// Learns of new histories of the database (a failover's promotion) and shares them with
    /// every instance, until the task is aborted; returns at once for the strategies that do
    /// not order copies by history.
    pub async fn watch_history(self, db: PgPool) {
        self.imp.watch_history(db).await
    }

    /// Tells the cache about a committed change. A failure is counted and logged; the caller
    /// keeps the change's outbox row so that the relay publishes it later.
    pub async fn publish(&self, state: &ProductState) -> Result<(), CacheError> {
        let result = self.imp.publish(state).await;
        match &result {
            Ok(()) => {}
            // A replica lagging or gone: every publish would say so; the metric and the outbox
            // backlog do, once.
            Err(error @ CacheError::Unconfirmed { .. }) => {
                self.backend.metrics.publishes_unconfirmed.increment(1);
                tracing::debug!(product = state.id(), version = state.version(), %error, "cache publish not confirmed by replicas");
            }
            // Redis unreachable: the reachability watch says so once, not once per write.
            Err(error) if error.is_unreachable() => {
                self.backend.metrics.publish_failures.increment(1);
                tracing::debug!(product = state.id(), version = state.version(), %error, "cache publish failed");
            }
            // Redis answered, and refused (out of memory, a script error): worth a line each.
            Err(error) => {
                self.backend.metrics.publish_failures.increment(1);
                tracing::warn!(product = state.id(), version = state.version(), %error, "cache publish failed");
            }
        }
        result
    }
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

    /// The checker names strategies by the contract's list: every name there is one this
    /// server accepts, and the other way round.
    #[test]
    fn the_contract_lists_every_strategy() {
        assert_eq!(
            CacheStrategy::ALL.map(CacheStrategy::as_str),
            shopnow_contract::strategies::ALL
        );
    }
}
