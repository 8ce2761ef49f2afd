//! The article's own design, built only with the `article-design` feature for the benchmark
//! (`serve --article-design`).
//!
//! Every read asks Postgres for the product's version, then GETs the payload stored under that
//! version from Redis; a miss reads the row and SETs it with a TTL. Writes touch nothing but
//! Postgres. It is never stale, but every read pays a Postgres round trip: the benchmark shows
//! what `versioned`'s copy in Redis, version included, saves.

use futures::future::BoxFuture;
use sqlx::PgPool;

use super::{
    backend::CacheBackend,
    read::{CacheStatus, ProductRead, VersionedBody},
    redis::CacheError,
    strategy::Strategy,
};
use crate::{db, error::Result, model::ProductState};

pub(super) struct ArticleCache {
    backend: CacheBackend,
}

impl ArticleCache {
    pub(super) fn new(backend: CacheBackend) -> Self {
        Self { backend }
    }

    async fn read(&self, db: &PgPool, id: i64) -> Result<ProductRead> {
        self.backend.count_database_read();
        let version = db::products::live_version(&mut *db.acquire().await?, id).await?;
        let Some(version) = version else {
            return Ok(ProductRead {
                found: None,
                status: CacheStatus::Bypass,
            });
        };
        let key = self.backend.keys(id).payload(version);
        let cached: Result<Option<Vec<u8>>, CacheError> = self
            .backend
            .redis()
            .query(redis::cmd("GET").arg(&key))
            .await;
        match cached {
            Ok(Some(body)) => {
                return Ok(ProductRead {
                    found: Some(VersionedBody {
                        history: 0,
                        version,
                        // The article keys copies by version alone: holds that lapsed since
                        // stay counted until the next version.
                        lapsed: 0,
                        body: body.into(),
                    }),
                    status: CacheStatus::Hit,
                });
            }
            Ok(None) => {}
            Err(error) => return self.backend.bypass(db, id, error).await,
        }
        let state = self.backend.load(db, id).await?;
        if let Some(ProductState::Live(product)) = &state {
            let body = VersionedBody::of(product);
            let _: Result<(), CacheError> = self
                .backend
                .redis()
                .query(
                    redis::cmd("SET")
                        .arg(self.backend.keys(id).payload(product.version))
                        .arg(body.body.as_ref())
                        .arg("EX")
                        .arg(self.backend.ttl_secs()),
                )
                .await;
        }
        Ok(ProductRead {
            found: state.as_ref().and_then(VersionedBody::of_state),
            status: CacheStatus::Miss,
        })
    }
}

impl Strategy for ArticleCache {
    /// Pages are not cached: read from Postgres.
    fn read_page<'a>(
        &'a self,
        db: &'a PgPool,
        listing: &'a crate::model::Listing,
    ) -> BoxFuture<'a, Result<super::read::PageRead>> {
        Box::pin(
            self.backend
                .page_from_postgres(db, listing, super::read::CacheStatus::Bypass),
        )
    }

    fn read<'a>(&'a self, db: &'a PgPool, id: i64) -> BoxFuture<'a, Result<ProductRead>> {
        Box::pin(ArticleCache::read(self, db, id))
    }
}
