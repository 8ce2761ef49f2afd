//! The seam between the product read/write paths and Redis.
//!
//! `ProductCache` is the one place that decides how a product read is served and what a
//! committed write does to the cache. Each strategy is a module of its own, readable alone:
//!
//! - [`none`]: every read goes to Postgres;
//! - [`ttl`]: read-through with a TTL, writes leave the cache alone (the article's bug);
//! - [`delete`]: `ttl` plus a DEL after each write (loses the slow-reader race);
//! - [`versioned`]: never older than the last acknowledged write (the default).

mod article;
mod delete;
mod keys;
mod none;
mod redis_client;
mod single_flight;
mod ttl;
mod versioned;

use std::{
    fmt,
    str::FromStr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use futures::future::BoxFuture;
use metrics::Counter;
use sqlx::PgPool;

pub use self::keys::ProductKeys;
pub use self::redis_client::{CacheError, RedisClient};
pub use self::versioned::Published;
use crate::{
    config::{CacheConfig, RedisConfig},
    db,
    error::ApiResult,
    product::{Product, ProductState},
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
    Article,
}

impl CacheStrategy {
    /// The strategies `SHOPNOW_CACHE_STRATEGY` accepts.
    pub const ALL: [CacheStrategy; 4] = [Self::None, Self::Ttl, Self::Delete, Self::Versioned];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Ttl => "ttl",
            Self::Delete => "delete",
            Self::Versioned => "versioned",
            Self::Article => "article",
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
    /// `None`: no such product, or deleted.
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
    pub version: i64,
    /// The product JSON, or `None` for a deletion's tombstone.
    pub payload: Option<Bytes>,
}

/// A hook awaited at one point of a path, given that point's arguments.
pub type Hook<Args> = Arc<dyn Fn(Args) -> BoxFuture<'static, ()> + Send + Sync>;

/// Test and checker hooks: code-level only, never switched on by configuration.
#[derive(Clone, Default)]
pub struct CacheHooks {
    /// Awaited between a miss's Postgres read and its fill, to hold a reader in the window
    /// where the `delete` strategy loses its race.
    pub before_fill: Option<Hook<i64>>,
    /// Awaited between the Postgres read (or commit) behind a publish and the publish itself,
    /// to hold a writer, the relay or the sampler in the window where a key loss happens.
    pub before_publish: Option<Hook<(PublishSite, i64)>>,
}

/// Which path is about to write to the cache, for `CacheHooks::before_publish`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishSite {
    /// A writer, between its commit and its write-through publish.
    WriteThrough,
    /// The outbox relay, between re-reading a product and publishing it.
    Relay,
    /// The consistency sampler, between finding a wrong copy and repairing it.
    Repair,
}

impl CacheHooks {
    async fn before_fill(&self, id: i64) {
        if let Some(hook) = &self.before_fill {
            hook(id).await;
        }
    }

    pub async fn before_publish(&self, site: PublishSite, id: i64) {
        if let Some(hook) = &self.before_publish {
            hook((site, id)).await;
        }
    }
}

/// Counters of one instance's cache, for tests and diagnostics (Prometheus has its own).
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Product reads that went to Postgres (misses and bypasses).
    pub database_reads: AtomicU64,
    /// Cached copies the sampler compared with Postgres.
    pub consistency_checks: AtomicU64,
    /// Copies the sampler found wrong.
    pub consistency_violations: AtomicU64,
    /// Wrong copies the sampler has finished repairing (or tried to).
    pub consistency_repairs: AtomicU64,
}

/// Prometheus counters of one strategy, registered once so the hot path does no lookups.
#[derive(Clone)]
struct CacheMetrics {
    hits: Counter,
    misses: Counter,
    bypasses: Counter,
    fills_refused: Counter,
    publish_failures: Counter,
    /// `versioned` publishes by outcome: replaced, newer_kept, nothing_stored.
    publishes: [Counter; 3],
    database_reads: Counter,
}

impl CacheMetrics {
    fn new(strategy: CacheStrategy) -> Self {
        let reads = |result: &'static str| metrics::counter!("cache_reads_total", "strategy" => strategy.as_str(), "result" => result);
        Self {
            hits: reads("hit"),
            misses: reads("miss"),
            bypasses: reads("bypass"),
            fills_refused: metrics::counter!("cache_fills_refused_total", "strategy" => strategy.as_str()),
            publish_failures: metrics::counter!("cache_publish_failures_total", "strategy" => strategy.as_str()),
            publishes: [Published::Replaced, Published::NewerKept, Published::NothingStored].map(
                |outcome| metrics::counter!("cache_publishes_total", "strategy" => strategy.as_str(), "result" => outcome.as_str()),
            ),
            database_reads: metrics::counter!("cache_database_reads_total", "strategy" => strategy.as_str()),
        }
    }

    fn count_publish(&self, published: Published) {
        let index = match published {
            Published::Replaced => 0,
            Published::NewerKept => 1,
            Published::NothingStored => 2,
        };
        self.publishes[index].increment(1);
    }

    fn count(&self, read: &ProductRead) {
        match read.status {
            CacheStatus::Hit => self.hits.increment(1),
            CacheStatus::Miss => self.misses.increment(1),
            CacheStatus::Bypass => self.bypasses.increment(1),
        }
    }
}

/// What every strategy shares: Postgres for misses, Redis (unless `none`), settings, metrics.
#[derive(Clone)]
struct CacheBackend {
    redis: Option<RedisClient>,
    prefix: String,
    ttl: Duration,
    hooks: CacheHooks,
    stats: Arc<CacheStats>,
    metrics: CacheMetrics,
}

impl CacheBackend {
    fn redis(&self) -> &RedisClient {
        self.redis
            .as_ref()
            .expect("Redis strategies are built with a client")
    }

    fn keys(&self, id: i64) -> ProductKeys<'_> {
        ProductKeys::new(&self.prefix, id)
    }

    fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs().max(1)
    }

    /// Counts one product read that went to Postgres.
    fn count_database_read(&self) {
        self.stats.database_reads.fetch_add(1, Ordering::Relaxed);
        self.metrics.database_reads.increment(1);
    }

    /// Reads a product from Postgres, counted.
    async fn load(&self, db: &PgPool, id: i64) -> ApiResult<Option<ProductState>> {
        self.count_database_read();
        let mut conn = db.acquire().await?;
        db::products::load_state(&mut conn, id).await
    }

    /// Serves a read from Postgres because Redis failed or is too slow.
    async fn bypass(&self, db: &PgPool, id: i64, error: CacheError) -> ApiResult<ProductRead> {
        tracing::debug!(product = id, %error, "cache bypassed");
        let state = self.load(db, id).await?;
        Ok(ProductRead {
            found: state.as_ref().and_then(VersionedBody::of_state),
            status: CacheStatus::Bypass,
        })
    }
}

/// The cache strategy in force, with what it needs to run.
pub enum ProductCache {
    None(none::NoCache),
    Ttl(ttl::TtlCache),
    Delete(delete::DeleteCache),
    Versioned(versioned::VersionedCache),
    Article(article::ArticleCache),
}

impl ProductCache {
    /// Builds the configured strategy. Does not contact Redis: an instance starts while Redis
    /// is down and uses it as soon as it answers.
    pub fn new(
        cache: &CacheConfig,
        redis: &RedisConfig,
        hooks: CacheHooks,
    ) -> anyhow::Result<Self> {
        let backend = CacheBackend {
            redis: match cache.strategy {
                CacheStrategy::None => None,
                _ => Some(RedisClient::new(redis)?),
            },
            prefix: cache.prefix.clone(),
            ttl: cache.ttl,
            hooks,
            stats: Arc::default(),
            metrics: CacheMetrics::new(cache.strategy),
        };
        Ok(match cache.strategy {
            CacheStrategy::None => Self::None(none::NoCache::new(backend)),
            CacheStrategy::Ttl => Self::Ttl(ttl::TtlCache::new(backend)),
            CacheStrategy::Delete => Self::Delete(delete::DeleteCache::new(backend)),
            CacheStrategy::Versioned => Self::Versioned(versioned::VersionedCache::new(backend)),
            CacheStrategy::Article => Self::Article(article::ArticleCache::new(backend)),
        })
    }

    fn backend(&self) -> &CacheBackend {
        match self {
            Self::None(cache) => cache.backend(),
            Self::Ttl(cache) => cache.backend(),
            Self::Delete(cache) => cache.backend(),
            Self::Versioned(cache) => cache.backend(),
            Self::Article(cache) => cache.backend(),
        }
    }

    pub fn strategy(&self) -> CacheStrategy {
        match self {
            Self::None(_) => CacheStrategy::None,
            Self::Ttl(_) => CacheStrategy::Ttl,
            Self::Delete(_) => CacheStrategy::Delete,
            Self::Versioned(_) => CacheStrategy::Versioned,
            Self::Article(_) => CacheStrategy::Article,
        }
    }

    pub fn stats(&self) -> Arc<CacheStats> {
        self.backend().stats.clone()
    }

    pub fn hooks(&self) -> &CacheHooks {
        &self.backend().hooks
    }

    pub async fn health(&self) -> CacheHealth {
        match &self.backend().redis {
            None => CacheHealth::Disabled,
            Some(redis) if redis.ping().await => CacheHealth::Ok,
            Some(_) => CacheHealth::Degraded,
        }
    }

    /// Reads product `id` for `GET /v1/products/{id}`.
    pub async fn read(&self, db: &PgPool, id: i64) -> ApiResult<ProductRead> {
        let read = match self {
            Self::None(cache) => cache.read(db, id).await?,
            Self::Ttl(cache) => cache.read(db, id).await?,
            Self::Delete(cache) => cache.read(db, id).await?,
            Self::Versioned(cache) => cache.read(db, id).await?,
            Self::Article(cache) => cache.read(db, id).await?,
        };
        self.backend().metrics.count(&read);
        Ok(read)
    }

    /// The cached copy of product `id`, if any, read without side effects.
    pub async fn peek(&self, id: i64) -> Result<Option<CachedCopy>, CacheError> {
        match self {
            Self::None(_) | Self::Article(_) => Ok(None),
            Self::Ttl(cache) => cache.peek(id).await,
            Self::Delete(cache) => cache.peek(id).await,
            Self::Versioned(cache) => cache.peek(id).await,
        }
    }

    /// Drops a copy the sampler found wrong; the next read fills it from Postgres.
    pub async fn repair(&self, id: i64) -> Result<(), CacheError> {
        match self {
            Self::None(_) | Self::Article(_) => Ok(()),
            Self::Ttl(cache) => cache.forget(id).await,
            Self::Delete(cache) => cache.forget(id).await,
            Self::Versioned(cache) => cache.drop_copy(id).await,
        }
    }

    /// Whether committed changes must reach the cache (and so go through the outbox).
    pub fn publishes(&self) -> bool {
        matches!(self, Self::Delete(_) | Self::Versioned(_))
    }

    /// Tells the cache about a committed change. A failure is counted and logged; the caller
    /// keeps the change's outbox row so that the relay publishes it later.
    pub async fn publish(&self, state: &ProductState) -> Result<(), CacheError> {
        let result = match self {
            Self::None(_) | Self::Ttl(_) | Self::Article(_) => Ok(()),
            Self::Delete(cache) => cache.publish(state).await,
            Self::Versioned(cache) => cache.publish(state).await.map(|published| {
                self.backend().metrics.count_publish(published);
            }),
        };
        if let Err(error) = &result {
            self.backend().metrics.publish_failures.increment(1);
            tracing::warn!(product = state.id(), version = state.version(), %error, "cache publish failed");
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
}
