//! Product reads and writes: Postgres first, then the cache.
//!
//! Every write commits its change together with an outbox row, publishes the committed state to
//! the cache, removes the outbox row, and only then answers. If the publish does not happen
//! (Redis unreachable, or the process died), the row stays and the relay publishes it. Handlers
//! call this and nothing else, so no write can forget the cache.

use std::sync::Arc;

use sqlx::{PgPool, Postgres, Transaction};

use crate::{
    cache::{ProductCache, ProductRead},
    db,
    error::ApiResult,
    faults::WriteFaults,
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
    faults: WriteFaults,
}

impl Catalog {
    pub fn new(db: PgPool, cache: ProductCache, faults: WriteFaults) -> Self {
        Self {
            inner: Arc::new(Inner { db, cache, faults }),
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
        let mut tx = self.inner.db.begin().await?;
        let product = db::products::insert(&mut tx, new).await?;
        self.commit_and_publish(tx, &[ProductState::Live(product.clone())])
            .await?;
        Ok(product)
    }

    pub async fn update(&self, id: i64, patch: &ProductPatch) -> ApiResult<Product> {
        let mut tx = self.inner.db.begin().await?;
        let product = db::products::update(&mut tx, id, patch).await?;
        self.commit_and_publish(tx, &[ProductState::Live(product.clone())])
            .await?;
        Ok(product)
    }

    pub async fn set_stock(&self, id: i64, stock: i64) -> ApiResult<Product> {
        let mut tx = self.inner.db.begin().await?;
        let product = db::products::set_stock(&mut tx, id, stock).await?;
        self.commit_and_publish(tx, &[ProductState::Live(product.clone())])
            .await?;
        Ok(product)
    }

    pub async fn adjust_stock(&self, id: i64, delta: i64) -> ApiResult<Product> {
        let mut tx = self.inner.db.begin().await?;
        let product = db::products::adjust_stock(&mut tx, id, delta).await?;
        self.commit_and_publish(tx, &[ProductState::Live(product.clone())])
            .await?;
        Ok(product)
    }

    pub async fn delete(&self, id: i64) -> ApiResult<()> {
        let mut tx = self.inner.db.begin().await?;
        let deleted = db::products::delete(&mut tx, id).await?;
        self.commit_and_publish(tx, &[deleted]).await
    }

    /// Places an order; every product it changed is published before the answer.
    pub async fn place_order(
        &self,
        lines: &OrderLines,
        idempotency_key: Option<&str>,
    ) -> ApiResult<db::orders::Placed> {
        let mut tx = self.inner.db.begin().await?;
        let placed = db::orders::place(&mut tx, lines, idempotency_key).await?;
        let changed: Vec<ProductState> = match &placed {
            db::orders::Placed::New { changed, .. } => {
                changed.iter().cloned().map(ProductState::Live).collect()
            }
            db::orders::Placed::Replayed(_) => Vec::new(),
        };
        self.commit_and_publish(tx, &changed).await?;
        Ok(placed)
    }

    /// Commits `tx` with an outbox row per changed product, then publishes each change and
    /// removes the rows whose publish succeeded. A failed publish is not an error for the
    /// client: the write is committed, and the relay publishes it later.
    async fn commit_and_publish(
        &self,
        mut tx: Transaction<'static, Postgres>,
        changed: &[ProductState],
    ) -> ApiResult<()> {
        let cache = &self.inner.cache;
        if changed.is_empty() || !cache.publishes() {
            tx.commit().await?;
            return Ok(());
        }
        let outbox_rows = db::outbox::record(&mut tx, changed).await?;
        tx.commit().await?;

        self.inner.faults.maybe_crash_after_commit();
        if self.inner.faults.should_skip_publish() {
            return Ok(());
        }
        let mut published = Vec::with_capacity(changed.len());
        for (state, row) in changed.iter().zip(outbox_rows) {
            if cache.publish(state).await.is_ok() {
                published.push(row);
            }
        }
        if !published.is_empty() {
            // Best effort: a row that stays is published again by the relay, harmlessly.
            if let Err(error) = db::outbox::remove(&self.inner.db, &published).await {
                tracing::warn!(%error, "could not remove published outbox rows");
            }
        }
        Ok(())
    }
}
