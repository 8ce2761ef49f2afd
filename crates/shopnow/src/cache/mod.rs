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
//! The types every strategy shares are in `read` (what a read answers, a copy) and `strategy`
//! (the trait); `backend` is what they share at run time (Redis, keys, counters); `redis` is the
//! connection. Nothing below this file imports it back.
//!
//! Adding a strategy:
//! 1. a module implementing `strategy::Strategy`, readable alone;
//! 2. its name in `shopnow_contract::strategies` (`ALL`, and `FRESH` if it promises reads never
//!    older than an acknowledged write), so that `stalecheck` knows it;
//! 3. a variant of `CacheStrategy` and one line in `REGISTRY`.
//!
//! The list of strategies, the parser of `SHOPNOW_CACHE_STRATEGY` and its error text, and the
//! test that the contract lists every strategy follow from those.

#[cfg(feature = "article-design")]
mod article;
mod backend;
mod delete;
mod none;
pub(crate) mod reachability;
mod read;
mod redis;
mod single_flight;
mod strategy;
mod ttl;
mod versioned;

use std::{
    fmt,
    str::FromStr,
    sync::{Arc, LazyLock},
    time::Duration,
};

use ::redis::Script;
use sqlx::PgPool;

use shopnow_contract::strategies;
pub use shopnow_contract::ProductKeys;

use self::{backend::CacheBackend, strategy::Strategy};
pub use self::{
    backend::CacheStats,
    read::CachedCopy,
    redis::{RedisConfig, RedisTlsFiles},
    versioned::{NearCacheConfig, CONVERGENCE_BOUND},
};
pub(crate) use self::{
    read::{CacheStatus, PageRead, ProductRead, VersionedBody},
    redis::{CacheError, RedisClient},
};
use crate::{
    error::Result,
    hooks::Hooks,
    model::{Listing, Product, ProductState},
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

/// A configurable strategy: its variant, its name, whether it keeps copies in Redis, and how it
/// is built.
struct Registered {
    strategy: CacheStrategy,
    name: &'static str,
    uses_redis: bool,
    /// Whether what it serves names the database history (`shopnow_contract::stamps`) in its
    /// ETags: the naive strategies keep bare JSON, so their ETags are the version alone, on
    /// every path (a hit, a miss, a write's answer), and repeat after a failover that lost
    /// commits; that is one of their bugs.
    carries_history: bool,
    build: fn(CacheBackend) -> Box<dyn Strategy>,
}

/// Every strategy `SHOPNOW_CACHE_STRATEGY` accepts, once: the one table to extend.
const REGISTRY: [Registered; 4] = [
    Registered {
        strategy: CacheStrategy::None,
        name: strategies::NONE,
        uses_redis: false,
        carries_history: true,
        build: |backend| Box::new(none::NoCache::new(backend)),
    },
    Registered {
        strategy: CacheStrategy::Ttl,
        name: strategies::TTL,
        uses_redis: true,
        carries_history: false,
        build: |backend| Box::new(ttl::TtlCache::new(backend)),
    },
    Registered {
        strategy: CacheStrategy::Delete,
        name: strategies::DELETE,
        uses_redis: true,
        carries_history: false,
        build: |backend| Box::new(delete::DeleteCache::new(backend)),
    },
    Registered {
        strategy: CacheStrategy::Versioned,
        name: strategies::VERSIONED,
        uses_redis: true,
        carries_history: true,
        build: |backend| Box::new(versioned::VersionedCache::new(backend)),
    },
];

impl CacheStrategy {
    /// The strategies `SHOPNOW_CACHE_STRATEGY` accepts, in `REGISTRY`'s order.
    pub const ALL: [CacheStrategy; REGISTRY.len()] = {
        let mut all = [CacheStrategy::None; REGISTRY.len()];
        let mut i = 0;
        while i < REGISTRY.len() {
            all[i] = REGISTRY[i].strategy;
            i += 1;
        }
        all
    };

    fn registered(self) -> Option<&'static Registered> {
        REGISTRY
            .iter()
            .find(|registered| registered.strategy == self)
    }

    pub fn as_str(self) -> &'static str {
        match self.registered() {
            Some(registered) => registered.name,
            // The article's design, the one strategy outside the registry.
            None => "article",
        }
    }

    /// The one place a strategy is built.
    fn build(self, backend: CacheBackend) -> Box<dyn Strategy> {
        match self.registered() {
            Some(registered) => (registered.build)(backend),
            #[cfg(feature = "article-design")]
            None => Box::new(article::ArticleCache::new(backend)),
            #[cfg(not(feature = "article-design"))]
            None => unreachable!("every strategy but the article's is registered"),
        }
    }

    /// Whether the strategy keeps copies in Redis.
    pub(crate) fn uses_redis(self) -> bool {
        self.registered()
            .is_none_or(|registered| registered.uses_redis)
    }

    /// Whether its ETags name the database history (the article's design's do not).
    fn carries_history(self) -> bool {
        self.registered()
            .is_some_and(|registered| registered.carries_history)
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
    /// The near cache of `versioned` (`SHOPNOW_NEAR_CACHE*`).
    pub near: NearCacheConfig,
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

/// The cache strategy in force, with what it needs to run. Cheap to clone.
#[derive(Clone)]
pub struct ProductCache {
    strategy: CacheStrategy,
    /// `strategy.carries_history()`, looked up once rather than on every read.
    carries_history: bool,
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
            cache.strategy.as_str(),
            client,
            cache.prefix.clone(),
            cache.ttl,
            cache.near.clone(),
            hooks,
        );
        Ok(Self {
            strategy: cache.strategy,
            carries_history: cache.strategy.carries_history(),
            imp: cache.strategy.build(backend.clone()).into(),
            backend,
        })
    }

    pub fn strategy(&self) -> CacheStrategy {
        self.strategy
    }

    /// Counts one request of `client` against its allowance (`rate_limit`), in Redis so that
    /// every instance counts together: `(allowed, left, ms until whole, ms to wait)`. `None`
    /// for a strategy without Redis. A call the client makes again after a dropped connection
    /// may count twice (`RedisClient::bounded`).
    pub(crate) async fn count_request(
        &self,
        client: &str,
        interval_ms: u64,
        burst: u64,
    ) -> Option<Result<(bool, u64, u64, u64), CacheError>> {
        static GCRA: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("gcra.lua")));
        let redis = self.backend.redis_client()?;
        let key = shopnow_contract::keys::rate_limit(&self.backend.prefix, client);
        let mut invocation = GCRA.prepare_invoke();
        invocation.key(key).arg(interval_ms).arg(burst);
        Some(
            redis
                .invoke::<(u8, u64, u64, u64)>(&invocation)
                .await
                .map(|(allowed, left, whole_ms, wait_ms)| (allowed == 1, left, whole_ms, wait_ms)),
        )
    }

    /// This instance's name among the relays (and in its leases): what it hands off is for the
    /// others' (`handoff`).
    pub(crate) fn instance(&self) -> &str {
        &self.backend.instance
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
    pub(crate) async fn read(&self, db: &PgPool, id: i64) -> Result<ProductRead> {
        let mut read = self.imp.read(db, id).await?;
        if !self.carries_history {
            if let Some(found) = &mut read.found {
                found.history = 0;
            }
        }
        self.backend.metrics.count_read(&read);
        Ok(read)
    }

    /// Reads a list page for `GET /v1/products`.
    pub(crate) async fn read_page(&self, db: &PgPool, listing: &Listing) -> Result<PageRead> {
        let mut page = self.imp.read_page(db, listing).await?;
        if !self.carries_history {
            page.items.iter_mut().for_each(|item| item.history = 0);
        }
        self.backend.metrics.count_page(&page);
        Ok(page)
    }

    /// Drops what is cached of the pages of category `scope` (when it is deleted): its
    /// generation (`versioned`; every page stored under it stops being served) and the naive
    /// strategies' pages.
    pub(crate) async fn forget_pages(&self, scope: &str) -> Result<(), CacheError> {
        let Some(redis) = self.backend.redis_client() else {
            return Ok(());
        };
        let keys = shopnow_contract::keys::PageKeys::new(&self.backend.prefix, scope);
        redis
            .query(
                ::redis::cmd("DEL")
                    .arg(keys.generation())
                    .arg(keys.page("naive")),
            )
            .await
    }

    /// The cached copy of product `id`, if any, read without side effects.
    pub async fn peek(&self, id: i64) -> Result<Option<CachedCopy>, CacheError> {
        self.imp.peek(id).await
    }

    /// Drops a copy the sampler found wrong; the next read fills it from Postgres.
    pub async fn repair(&self, id: i64) -> Result<(), CacheError> {
        self.imp.drop_copy(id).await
    }

    /// Whether copies carry the database history (their stamps), or only versions.
    pub(crate) fn carries_history(&self) -> bool {
        self.carries_history
    }

    /// The ETag a read of `product`'s version answers under this strategy, for a write's
    /// answer.
    pub(crate) fn etag(&self, product: &Product) -> String {
        let history = match self.carries_history {
            true => product.history,
            false => 0,
        };
        shopnow_contract::stamps::etag_with_lapsed(history, product.version, product.lapsed())
    }

    /// How long a writer whose publish failed waits for another instance to publish it
    /// (`handoff::wait`): longer with the near cache, whose publishes may wait for a holder.
    pub(crate) fn handoff_wait(&self) -> Duration {
        self.imp.handoff_wait()
    }

    /// Whether committed changes must reach the cache (and so go through the outbox).
    pub fn publishes(&self) -> bool {
        self.imp.publishes()
    }

    /// Learns of new histories of the database (a failover's promotion) and shares them with
    /// every instance, until the task is aborted; returns at once for the strategies that do
    /// not order copies by history.
    /// What the strategy learns before the instance serves (`versioned`: which copies it may
    /// serve, so that its first reads need not all go to Postgres).
    pub(crate) async fn prepare(&self, db: &PgPool) {
        self.imp.prepare(db).await
    }

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
