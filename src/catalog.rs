//! Product reads and writes: Postgres first, then the cache.
//!
//! Every write commits in Postgres, then publishes the committed state to the cache, then
//! answers. Handlers call this and nothing else, so no write can forget the cache.

use std::sync::Arc;

use sqlx::PgPool;

use crate::{
    cache::{ProductCache, ProductRead},
    db,
    error::ApiResult,
    order::OrderLines,
    product::{NewProduct, Product, ProductPatch, ProductState},
};

#[derive(Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

struct Inner {
    db: PgPool,
    cache: ProductCache,
}

impl Catalog {
    pub fn new(db: PgPool, cache: ProductCache) -> Self {
        Self {
            inner: Arc::new(Inner { db, cache }),
        }
    }

    pub fn db(&self) -> &PgPool {
        &self.inner.db
    }

    pub fn cache(&self) -> &ProductCache {
        &self.inner.cache
    }

    pub async fn read(&self, id: i64) -> ApiResult<ProductRead> {
        self.inner.cache.read(&self.inner.db, id).await
    }

    pub async fn list(&self, after: i64, limit: i64) -> ApiResult<Vec<Product>> {
        let mut conn = self.inner.db.acquire().await?;
        db::products::list(&mut conn, after, limit).await
    }

    pub async fn create(&self, new: &NewProduct) -> ApiResult<Product> {
        let mut conn = self.inner.db.acquire().await?;
        let product = db::products::insert(&mut conn, new).await?;
        self.published(product).await
    }

    pub async fn update(&self, id: i64, patch: &ProductPatch) -> ApiResult<Product> {
        let mut conn = self.inner.db.acquire().await?;
        let product = db::products::update(&mut conn, id, patch).await?;
        self.published(product).await
    }

    pub async fn set_stock(&self, id: i64, stock: i64) -> ApiResult<Product> {
        let mut conn = self.inner.db.acquire().await?;
        let product = db::products::set_stock(&mut conn, id, stock).await?;
        self.published(product).await
    }

    pub async fn adjust_stock(&self, id: i64, delta: i64) -> ApiResult<Product> {
        let mut conn = self.inner.db.acquire().await?;
        let product = db::products::adjust_stock(&mut conn, id, delta).await?;
        self.published(product).await
    }

    pub async fn delete(&self, id: i64) -> ApiResult<()> {
        let mut conn = self.inner.db.acquire().await?;
        let deleted = db::products::delete(&mut conn, id).await?;
        self.inner.cache.publish(&deleted).await;
        Ok(())
    }

    /// Places an order; every product it changed is published before the answer.
    pub async fn place_order(
        &self,
        lines: &OrderLines,
        idempotency_key: Option<&str>,
    ) -> ApiResult<db::orders::Placed> {
        let placed = db::orders::place(&self.inner.db, lines, idempotency_key).await?;
        if let db::orders::Placed::New { changed, .. } = &placed {
            for product in changed {
                self.inner
                    .cache
                    .publish(&ProductState::Live(product.clone()))
                    .await;
            }
        }
        Ok(placed)
    }

    async fn published(&self, product: Product) -> ApiResult<Product> {
        self.inner
            .cache
            .publish(&ProductState::Live(product.clone()))
            .await;
        Ok(product)
    }
}
