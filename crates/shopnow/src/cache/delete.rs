//! `delete`: "event-driven invalidation". Reads as `ttl` does; after each committed write the
//! product's key is deleted.
//!
//! It loses a classic race: a reader misses and reads the old row from Postgres; a writer
//! commits and deletes the key; the reader then stores the old row, which every instance serves
//! until the TTL runs out. `versioned` closes that window; this strategy is kept to show it.

use futures::future::BoxFuture;
use sqlx::PgPool;

use super::{
    backend::CacheBackend,
    read::{CachedCopy, PageRead, ProductRead},
    redis::CacheError,
    strategy::Strategy,
    ttl::TtlCache,
};
use crate::{
    error::Result,
    model::{Listing, ProductState},
};

pub(super) struct DeleteCache {
    reads: TtlCache,
}

impl DeleteCache {
    pub(super) fn new(backend: CacheBackend) -> Self {
        Self {
            reads: TtlCache::new(backend),
        }
    }
}

impl Strategy for DeleteCache {
    fn read<'a>(&'a self, db: &'a PgPool, id: i64) -> BoxFuture<'a, Result<ProductRead>> {
        Box::pin(self.reads.read(db, id))
    }

    fn read_page<'a>(
        &'a self,
        db: &'a PgPool,
        listing: &'a Listing,
    ) -> BoxFuture<'a, Result<PageRead>> {
        Box::pin(self.reads.read_page(db, listing))
    }

    fn publishes(&self) -> bool {
        true
    }

    /// Drops the product's key and the pages of its categories ("purge on write").
    fn publish<'a>(&'a self, state: &'a ProductState) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            self.reads.forget(state.id()).await?;
            self.reads.forget_pages(state).await
        })
    }

    fn peek(&self, id: i64) -> BoxFuture<'_, Result<Option<CachedCopy>, CacheError>> {
        Box::pin(self.reads.peek(id))
    }

    fn drop_copy(&self, id: i64) -> BoxFuture<'_, Result<(), CacheError>> {
        Box::pin(self.reads.forget(id))
    }
}
