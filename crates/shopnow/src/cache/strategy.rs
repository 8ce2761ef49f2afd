//! What a cache strategy does: the trait every strategy module implements.

use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::PgPool;

use super::{
    read::{CachedCopy, PageRead, ProductRead},
    redis::CacheError,
};
use crate::{
    error::Result,
    model::{Listing, ProductState},
};

/// What a cache strategy does; each lives in a module of its own. Strategies that leave writes
/// alone or keep nothing to inspect keep the defaults.
pub(super) trait Strategy: Send + Sync {
    /// Serves `GET /v1/products/{id}`.
    fn read<'a>(&'a self, db: &'a PgPool, id: i64) -> BoxFuture<'a, Result<ProductRead>>;

    /// Serves `GET /v1/products` (a list page); from Postgres unless the strategy caches pages.
    fn read_page<'a>(
        &'a self,
        db: &'a PgPool,
        listing: &'a Listing,
    ) -> BoxFuture<'a, Result<PageRead>>;

    /// Whether committed changes must reach the cache (and so go through the outbox).
    fn publishes(&self) -> bool {
        false
    }

    /// How long a writer whose publish failed waits for another instance to publish it
    /// (`handoff::wait`): longer where a publish may wait for near-cache holders.
    fn handoff_wait(&self) -> Duration {
        crate::handoff::wait(None)
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

    /// What the strategy learns before the instance serves its first request.
    fn prepare<'a>(&'a self, _db: &'a PgPool) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// Watches the database's history until aborted, for a strategy that orders copies by it;
    /// the others return at once.
    fn watch_history(&self, _db: PgPool) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
