//! `delete`: "event-driven invalidation". Reads as `ttl` does; after each committed write the
//! product's key is deleted.
//!
//! It loses a classic race: a reader misses and reads the old row from Postgres; a writer
//! commits and deletes the key; the reader then stores the old row, which every instance serves
//! until the TTL runs out. `versioned` closes that window; this strategy is kept to show it.

use sqlx::PgPool;

use super::{ttl::TtlCache, CacheBackend, CacheError, CachedCopy, ProductRead};
use crate::{error::ApiResult, product::ProductState};

pub struct DeleteCache {
    reads: TtlCache,
}

impl DeleteCache {
    pub(super) fn new(backend: CacheBackend) -> Self {
        Self {
            reads: TtlCache::new(backend),
        }
    }

    pub(super) fn backend(&self) -> &CacheBackend {
        self.reads.backend()
    }

    pub async fn read(&self, db: &PgPool, id: i64) -> ApiResult<ProductRead> {
        self.reads.read(db, id).await
    }

    pub async fn peek(&self, id: i64) -> Result<Option<CachedCopy>, CacheError> {
        self.reads.peek(id).await
    }

    pub async fn publish(&self, state: &ProductState) -> Result<(), CacheError> {
        self.forget(state.id()).await
    }

    pub async fn forget(&self, id: i64) -> Result<(), CacheError> {
        self.reads.forget(id).await
    }
}
