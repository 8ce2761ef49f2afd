//! `ttl`: the article's bug, kept so it can be shown and measured.
//!
//! Read: GET the product's key; on a miss read Postgres and SET the key with a TTL. Writes do
//! not touch Redis, so after a stock change every instance keeps serving the old stock until
//! the TTL runs out.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use shopnow_contract::keys::PageKeys;
use sqlx::PgPool;

use super::{
    backend::CacheBackend,
    read::{CacheStatus, CachedCopy, PageRead, ProductRead, VersionedBody},
    redis::CacheError,
    strategy::Strategy,
};
use crate::{
    error::Result,
    model::{Listing, Position, ProductState, ALL_SCOPE},
};

pub(super) struct TtlCache {
    backend: CacheBackend,
}

impl TtlCache {
    pub(super) fn new(backend: CacheBackend) -> Self {
        Self { backend }
    }

    pub(super) async fn read(&self, db: &PgPool, id: i64) -> Result<ProductRead> {
        let keys = self.backend.keys(id);
        let cached: Result<Option<Vec<u8>>, CacheError> = self
            .backend
            .redis()
            .query(redis::cmd("GET").arg(keys.plain()))
            .await;
        match cached {
            Ok(Some(payload)) => match version_of(&payload) {
                Some(version) => {
                    return Ok(ProductRead {
                        // The naive strategies keep only the JSON, which names no history.
                        found: Some(VersionedBody {
                            history: 0,
                            version,
                            // Naive: the JSON counts the holds as they were when it was stored.
                            lapsed: 0,
                            body: payload.into(),
                        }),
                        status: CacheStatus::Hit,
                    });
                }
                None => tracing::warn!(product = id, "unreadable cache entry; reading Postgres"),
            },
            Ok(None) => {}
            Err(error) => return self.backend.bypass(db, id, error).await,
        }

        let state = self.backend.load(db, id).await?;
        self.backend.hooks.before_fill(id).await;
        let found = match &state {
            Some(ProductState::Live(product)) => {
                let body = VersionedBody::of(product);
                let stored: Result<(), CacheError> = self
                    .backend
                    .redis()
                    .query(
                        redis::cmd("SET")
                            .arg(keys.plain())
                            .arg(body.body.as_ref())
                            .arg("EX")
                            .arg(self.backend.ttl_secs()),
                    )
                    .await;
                if let Err(error) = stored {
                    tracing::debug!(product = id, %error, "cache fill failed");
                }
                Some(body)
            }
            // Deleted or never existed: not cached, so the next read asks Postgres again.
            Some(ProductState::Deleted { .. }) | None => None,
        };
        Ok(ProductRead {
            found,
            status: CacheStatus::Miss,
        })
    }
}

impl Strategy for TtlCache {
    fn read<'a>(&'a self, db: &'a PgPool, id: i64) -> BoxFuture<'a, Result<ProductRead>> {
        Box::pin(TtlCache::read(self, db, id))
    }

    fn read_page<'a>(
        &'a self,
        db: &'a PgPool,
        listing: &'a Listing,
    ) -> BoxFuture<'a, Result<PageRead>> {
        Box::pin(TtlCache::read_page(self, db, listing))
    }

    fn peek(&self, id: i64) -> BoxFuture<'_, Result<Option<CachedCopy>, CacheError>> {
        Box::pin(TtlCache::peek(self, id))
    }

    fn drop_copy(&self, id: i64) -> BoxFuture<'_, Result<(), CacheError>> {
        Box::pin(self.forget(id))
    }
}

/// A list page as the naive strategies keep it: every item's JSON as it was when the page was
/// read from Postgres, under the scope's hash (`<prefix>:{pages:<scope>}:naive`, one field per
/// page), which expires with the TTL and which `delete` drops after a write.
#[derive(Serialize, Deserialize)]
struct NaivePage {
    items: Vec<(i64, String)>,
    next: Option<Position>,
}

impl TtlCache {
    /// `ttl`'s list page: served from Redis while the TTL lasts, whatever changed since.
    pub(super) async fn read_page(&self, db: &PgPool, listing: &Listing) -> Result<PageRead> {
        let key = self.naive_pages_key(listing.scope());
        let page = listing.fingerprint();
        let cached: Result<Option<Vec<u8>>, CacheError> = self
            .backend
            .redis()
            .query(redis::cmd("HGET").arg(&key).arg(&page))
            .await;
        match cached {
            Ok(Some(stored)) => {
                if let Ok(stored) = serde_json::from_slice::<NaivePage>(&stored) {
                    return Ok(PageRead {
                        items: stored
                            .items
                            .into_iter()
                            .map(|(version, body)| VersionedBody {
                                history: 0,
                                version,
                                lapsed: 0,
                                body: body.into(),
                            })
                            .collect(),
                        next: stored.next,
                        status: CacheStatus::Hit,
                    });
                }
            }
            Ok(None) => {}
            Err(_) => {
                return self
                    .backend
                    .page_from_postgres(db, listing, CacheStatus::Bypass)
                    .await
            }
        }
        let read = self
            .backend
            .page_from_postgres(db, listing, CacheStatus::Miss)
            .await?;
        let stored = NaivePage {
            items: read
                .items
                .iter()
                .map(|item| {
                    let body = String::from_utf8_lossy(&item.body).into_owned();
                    (item.version, body)
                })
                .collect(),
            next: read.next.clone(),
        };
        let mut store = redis::pipe();
        store
            .cmd("HSET")
            .arg(&key)
            .arg(&page)
            .arg(serde_json::to_vec(&stored).expect("a page serialises"))
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(self.backend.ttl_secs())
            .arg("NX")
            .ignore();
        if let Err(error) = self.backend.redis().pipeline_publish(&store).await {
            tracing::debug!(%error, "list page not cached");
        }
        Ok(read)
    }

    /// Drops the cached pages of every scope that lists `state` now (`delete`'s purge).
    pub(super) async fn forget_pages(&self, state: &ProductState) -> Result<(), CacheError> {
        let mut keys = vec![self.naive_pages_key(ALL_SCOPE)];
        if let ProductState::Live(product) = state {
            keys.extend(
                product
                    .listed_in
                    .iter()
                    .map(|scope| self.naive_pages_key(scope)),
            );
        }
        self.backend
            .redis()
            .query(redis::cmd("DEL").arg(keys))
            .await
    }

    fn naive_pages_key(&self, scope: &str) -> String {
        PageKeys::new(self.backend.prefix(), scope).page("naive")
    }

    pub(super) async fn peek(&self, id: i64) -> Result<Option<CachedCopy>, CacheError> {
        let keys = self.backend.keys(id);
        let cached: Option<Vec<u8>> = self
            .backend
            .redis()
            .query(redis::cmd("GET").arg(keys.plain()))
            .await?;
        Ok(cached.and_then(|payload| {
            Some(CachedCopy {
                history: 0,
                version: version_of(&payload)?,
                payload: Some(payload.into()),
                reservations: Default::default(),
                rendered_at_ms: 0,
            })
        }))
    }

    /// Drops the product's entry; the next read fills it from Postgres.
    pub(super) async fn forget(&self, id: i64) -> Result<(), CacheError> {
        let keys = self.backend.keys(id);
        self.backend
            .redis()
            .query(redis::cmd("DEL").arg(keys.plain()))
            .await
    }
}

/// The version inside a cached product JSON, for the ETag.
fn version_of(payload: &[u8]) -> Option<i64> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: i64,
    }
    serde_json::from_slice::<VersionOnly>(payload)
        .ok()
        .map(|v| v.version)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_is_read_from_the_cached_json() {
        assert_eq!(
            super::version_of(br#"{"id":1,"version":7,"stock":3}"#),
            Some(7)
        );
        assert_eq!(super::version_of(b"garbage"), None);
    }
}
