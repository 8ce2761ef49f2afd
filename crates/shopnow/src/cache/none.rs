//! `none`: every read goes to Postgres. The baseline the other strategies are measured against.

use futures::future::BoxFuture;
use sqlx::PgPool;

use super::{
    backend::CacheBackend,
    read::{CacheStatus, ProductRead, VersionedBody},
    strategy::Strategy,
};
use crate::error::Result;

pub(super) struct NoCache {
    backend: CacheBackend,
}

impl NoCache {
    pub(super) fn new(backend: CacheBackend) -> Self {
        Self { backend }
    }
}

impl Strategy for NoCache {
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
        Box::pin(async move {
            let state = self.backend.load(db, id).await?;
            Ok(ProductRead {
                found: state.as_ref().and_then(VersionedBody::of_state),
                status: CacheStatus::Bypass,
            })
        })
    }
}
