//! What every strategy shares: Redis (unless `none`), the key layout, settings, hooks, counters.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use metrics::Counter;
use sqlx::PgPool;

use shopnow_contract::ProductKeys;

use super::{
    read::{CacheStatus, PageRead, ProductRead, VersionedBody},
    redis::{CacheError, RedisClient},
    versioned::near_config::NearCacheConfig,
};
use crate::{
    db,
    error::Result,
    hooks::Hooks,
    model::{Listing, ProductState},
};

/// Counters of one instance's cache, for tests and diagnostics (Prometheus has its own).
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Product reads that went to Postgres (misses and bypasses).
    pub database_reads: AtomicU64,
    /// List pages read from Postgres (the product reads their items took are counted above).
    pub page_database_reads: AtomicU64,
    /// Cached copies the sampler compared with Postgres.
    pub consistency_checks: AtomicU64,
    /// Copies the sampler found wrong.
    pub consistency_violations: AtomicU64,
    /// Wrong copies the sampler has finished dropping (or tried to).
    pub consistency_repairs: AtomicU64,
}

/// Prometheus counters of one strategy, registered once so the hot path does no lookups.
#[derive(Clone)]
pub(super) struct CacheMetrics {
    hits: Counter,
    near_hits: Counter,
    misses: Counter,
    bypasses: Counter,
    pub fills_refused: Counter,
    pub publish_failures: Counter,
    /// Publishes the primary applied but too few replicas confirmed in time.
    pub publishes_unconfirmed: Counter,
    database_reads: Counter,
    /// List page reads by result, in the order of `CacheStatus` (hit, near, miss, bypass).
    page_reads: [Counter; 4],
    page_database_reads: Counter,
}

impl CacheMetrics {
    fn new(name: &'static str) -> Self {
        let reads = |result: &'static str| metrics::counter!("cache_reads_total", "strategy" => name, "result" => result);
        Self {
            hits: reads("hit"),
            near_hits: reads("near"),
            misses: reads("miss"),
            bypasses: reads("bypass"),
            fills_refused: metrics::counter!("cache_fills_refused_total", "strategy" => name),
            publish_failures: metrics::counter!("cache_publish_failures_total", "strategy" => name),
            publishes_unconfirmed: metrics::counter!("cache_publishes_unconfirmed_total", "strategy" => name),
            database_reads: metrics::counter!("cache_database_reads_total", "strategy" => name),
            page_reads: ["hit", "near", "miss", "bypass"].map(|result| {
                metrics::counter!("cache_page_reads_total", "strategy" => name, "result" => result)
            }),
            page_database_reads: metrics::counter!("cache_page_database_reads_total", "strategy" => name),
        }
    }

    pub(super) fn count_page(&self, page: &PageRead) {
        let index = match page.status {
            CacheStatus::Hit => 0,
            CacheStatus::Near => 1,
            CacheStatus::Miss => 2,
            CacheStatus::Bypass => 3,
        };
        self.page_reads[index].increment(1);
    }

    pub(super) fn count_read(&self, read: &ProductRead) {
        match read.status {
            CacheStatus::Hit => self.hits.increment(1),
            CacheStatus::Near => self.near_hits.increment(1),
            CacheStatus::Miss => self.misses.increment(1),
            CacheStatus::Bypass => self.bypasses.increment(1),
        }
    }
}

#[derive(Clone)]
pub(super) struct CacheBackend {
    redis: Option<RedisClient>,
    pub(super) prefix: String,
    ttl: Duration,
    /// This instance's name, unique among every instance's: in lease and fence tokens, its
    /// near-cache channel, and the outbox rows it hands off.
    pub instance: Arc<str>,
    /// `SHOPNOW_NEAR_CACHE*`, for `versioned`.
    pub near: NearCacheConfig,
    pub hooks: Hooks,
    pub stats: Arc<CacheStats>,
    pub metrics: CacheMetrics,
}

impl CacheBackend {
    pub(super) fn new(
        strategy: &'static str,
        redis: Option<RedisClient>,
        prefix: String,
        ttl: Duration,
        near: NearCacheConfig,
        hooks: Hooks,
    ) -> Self {
        Self {
            redis,
            prefix,
            ttl,
            instance: uuid::Uuid::new_v4().simple().to_string().into(),
            near,
            hooks,
            stats: Arc::default(),
            metrics: CacheMetrics::new(strategy),
        }
    }

    pub(super) fn redis_client(&self) -> Option<&RedisClient> {
        self.redis.as_ref()
    }

    pub(super) fn redis(&self) -> &RedisClient {
        self.redis
            .as_ref()
            .expect("Redis strategies are built with a client")
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(super) fn keys(&self, id: i64) -> ProductKeys<'_> {
        ProductKeys::new(&self.prefix, id)
    }

    /// `<prefix>:history`: the newest database history any instance has seen.
    pub(super) fn history_key(&self) -> String {
        shopnow_contract::keys::history(&self.prefix)
    }

    pub(super) fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs().max(1)
    }

    /// Counts one product read that went to Postgres.
    pub(super) fn count_database_read(&self) {
        self.stats.database_reads.fetch_add(1, Ordering::Relaxed);
        self.metrics.database_reads.increment(1);
    }

    /// Reads a product from Postgres, counted.
    pub(super) async fn load(&self, db: &PgPool, id: i64) -> Result<Option<ProductState>> {
        self.count_database_read();
        let mut conn = db.acquire().await?;
        db::products::load_state(&mut conn, id).await
    }

    /// Reads a list page from Postgres, counted.
    pub(super) async fn load_page(
        &self,
        db: &PgPool,
        listing: &Listing,
    ) -> Result<db::listing::PageRows> {
        self.stats
            .page_database_reads
            .fetch_add(1, Ordering::Relaxed);
        self.metrics.page_database_reads.increment(1);
        let mut conn = db.acquire().await?;
        db::listing::page(&mut conn, listing).await
    }

    /// A list page as Postgres has it, for the strategies that do not cache pages.
    pub(super) async fn page_from_postgres(
        &self,
        db: &PgPool,
        listing: &Listing,
        status: CacheStatus,
    ) -> Result<PageRead> {
        let rows = self.load_page(db, listing).await?;
        Ok(PageRead::of_rows(&rows.items, rows.more, listing, status))
    }

    /// Serves a read from Postgres because Redis failed or is too slow.
    pub(super) async fn bypass(
        &self,
        db: &PgPool,
        id: i64,
        error: CacheError,
    ) -> Result<ProductRead> {
        tracing::debug!(product = id, %error, "cache bypassed");
        let state = self.load(db, id).await?;
        Ok(ProductRead {
            found: state.as_ref().and_then(VersionedBody::of_state),
            status: CacheStatus::Bypass,
        })
    }
}
