//! `none`: every read goes to Postgres. The baseline the other strategies are measured against.

use sqlx::PgPool;

use super::{CacheBackend, CacheStatus, ProductRead, VersionedBody};
use crate::error::ApiResult;

pub struct NoCache {
    backend: CacheBackend,
}

impl NoCache {
    pub(super) fn new(backend: CacheBackend) -> Self {
        Self { backend }
    }

    pub(super) fn backend(&self) -> &CacheBackend {
        &self.backend
    }

    pub async fn read(&self, db: &PgPool, id: i64) -> ApiResult<ProductRead> {
        let state = self.backend.load(db, id).await?;
        Ok(ProductRead {
            found: state.as_ref().and_then(VersionedBody::of_state),
            status: CacheStatus::Bypass,
        })
    }
}
