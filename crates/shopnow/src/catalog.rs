//! Product, hold and order reads and writes: Postgres first, then the cache.
//!
//! Every write commits its change (the table's triggers add its outbox row in the same
//! transaction), publishes the committed state to the cache, and only then answers; the outbox
//! row is removed in the background (`sweeper`). If the publish does not happen (Redis
//! unreachable, or the process died), the row stays and the relay publishes it. Handlers call
//! this and nothing else, so no write can forget the cache.

use std::sync::Arc;

use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::{
    cache::{CacheHealth, CacheStats, CacheStrategy, ProductCache, ProductRead},
    db::{self, Database},
    error::{Error, Result},
    faults::WriteFaults,
    handoff,
    hooks::{Hooks, PublishSite},
    model::{
        new_access_token, Bearer, Hold, HoldLines, HoldReceipt, NewProduct, OrderReceipt,
        OrderSource, Product, ProductPatch, ProductState, StoredOrder,
    },
    sweeper::Sweeper,
    write_gate::{GateLimits, WriteGate},
};

#[derive(Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

struct Inner {
    db: PgPool,
    /// Every pool: `db` (which is `database.pool`), readiness's and the relay's listener's.
    database: Database,
    cache: ProductCache,
    faults: WriteFaults,
    hooks: Hooks,
    gate: WriteGate,
    sweeper: Sweeper,
}

/// A hold as created, or as created earlier under the same Idempotency-Key.
pub(crate) struct CreatedHold {
    pub(crate) receipt: HoldReceipt,
    /// True when this is a retry: the hold was created before and nothing was set aside now.
    pub replayed: bool,
}

/// An order as placed, or as placed earlier under the same Idempotency-Key.
pub(crate) struct PlacedOrder {
    pub receipt: OrderReceipt,
    /// True when this is a retry: the order was placed before and no stock was taken now.
    pub replayed: bool,
}

/// A change made inside a write's transaction: what to answer, and every product it changed.
type Change<'c, T> = BoxFuture<'c, Result<(T, Vec<ProductState>)>>;

impl Catalog {
    pub fn new(
        database: Database,
        cache: ProductCache,
        faults: WriteFaults,
        hooks: Hooks,
        gate: GateLimits,
        sweeper: Sweeper,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                db: database.pool.clone(),
                database,
                cache,
                faults,
                hooks,
                gate: WriteGate::new(gate),
                sweeper,
            }),
        }
    }

    /// For the background tasks (relay, sampler), which work below the catalog's operations.
    pub(crate) fn db(&self) -> &PgPool {
        &self.inner.db
    }

    pub(crate) fn cache(&self) -> &ProductCache {
        &self.inner.cache
    }

    /// The relay's connection for LISTEN.
    pub(crate) fn notifications(&self) -> &PgPool {
        &self.inner.database.notifications
    }

    pub(crate) fn hooks(&self) -> &Hooks {
        &self.inner.hooks
    }

    pub fn strategy(&self) -> CacheStrategy {
        self.inner.cache.strategy()
    }

    /// The cache's counters, for tests and diagnostics.
    pub fn cache_stats(&self) -> Arc<CacheStats> {
        self.inner.cache.stats()
    }

    pub async fn cache_health(&self) -> CacheHealth {
        self.inner.cache.health().await
    }

    /// Whether Postgres answers, on a connection request traffic never uses.
    pub async fn database_ready(&self) -> bool {
        self.inner.database.ready().await
    }

    /// The ETag a read of `product`'s version answers.
    pub(crate) fn etag(&self, product: &Product) -> String {
        self.inner.cache.etag(product)
    }

    pub async fn read(&self, id: i64) -> Result<ProductRead> {
        self.inner.cache.read(&self.inner.db, id).await
    }

    pub async fn list(&self, after: i64, limit: i64) -> Result<Vec<Product>> {
        let mut conn = self.inner.db.acquire().await?;
        db::products::list(&mut conn, after, limit).await
    }

    pub async fn order(&self, id: i64) -> Result<StoredOrder> {
        let mut conn = self.inner.db.acquire().await?;
        db::orders::find(&mut conn, id)
            .await?
            .ok_or_else(|| Error::order_not_found(id))
    }

    /// Makes sure demo products `DEMO-000001`..`count` exist; returns how many were inserted.
    pub async fn seed_demo(&self, count: i64) -> Result<u64> {
        let mut conn = self.inner.db.acquire().await?;
        db::products::seed_demo(&mut conn, count).await
    }

    pub async fn create(&self, new: &NewProduct) -> Result<Product> {
        let new = new.clone();
        self.write(&[], move |tx| {
            Box::pin(async move { live(db::products::insert(tx, &new).await?) })
        })
        .await
    }

    pub async fn update(&self, id: i64, patch: &ProductPatch) -> Result<Product> {
        let patch = patch.clone();
        self.write(&[id], move |tx| {
            Box::pin(async move { live(db::products::update(tx, id, &patch).await?) })
        })
        .await
    }

    pub async fn set_stock(&self, id: i64, stock: i64) -> Result<Product> {
        self.write(&[id], move |tx| {
            Box::pin(async move { live(db::products::set_stock(tx, id, stock).await?) })
        })
        .await
    }

    pub async fn adjust_stock(&self, id: i64, delta: i64) -> Result<Product> {
        self.write(&[id], move |tx| {
            Box::pin(async move { live(db::products::adjust_stock(tx, id, delta).await?) })
        })
        .await
    }

    pub async fn delete(&self, id: i64) -> Result<()> {
        self.write(&[id], move |tx| {
            Box::pin(async move {
                let deleted = db::products::delete(tx, id).await?;
                Ok(((), vec![deleted]))
            })
        })
        .await
    }

    /// Places an order, from items or from a hold `bearer` opens; every product it changed is
    /// published before the answer.
    pub(crate) async fn place_order(
        &self,
        source: &OrderSource,
        bearer: Option<Bearer>,
        idempotency_key: Option<&str>,
    ) -> Result<PlacedOrder> {
        let products = match source {
            OrderSource::Items(lines) => lines.product_ids(),
            // Not known before the hold is read: the gate bounds writes by the products a
            // request names, and this one names none.
            OrderSource::Hold(_) => Vec::new(),
        };
        let source = source.clone();
        let key = idempotency_key.map(str::to_owned);
        let token = new_access_token();
        self.write(&products, move |tx| {
            Box::pin(async move {
                let placed =
                    db::orders::place(tx, &source, bearer.as_ref(), key.as_deref(), &token).await?;
                Ok(match placed {
                    db::orders::Placed::New { receipt, changed } => (
                        PlacedOrder {
                            receipt,
                            replayed: false,
                        },
                        live_states(changed),
                    ),
                    db::orders::Placed::Replayed(receipt) => (
                        PlacedOrder {
                            receipt,
                            replayed: true,
                        },
                        Vec::new(),
                    ),
                })
            })
        })
        .await
    }

    /// Cancels an order `bearer` opens; its stock comes back, and is published before the
    /// answer. Cancelling a cancelled order changes nothing.
    pub(crate) async fn cancel_order(&self, id: i64, bearer: Bearer) -> Result<StoredOrder> {
        self.write(&[], move |tx| {
            Box::pin(async move {
                let cancelled = db::orders::cancel(tx, id, &bearer).await?;
                Ok((cancelled.order, live_states(cancelled.changed)))
            })
        })
        .await
    }

    /// Sets a hold's items aside; every product it changed is published before the answer.
    pub(crate) async fn create_hold(
        &self,
        hold: &HoldLines,
        idempotency_key: Option<&str>,
    ) -> Result<CreatedHold> {
        let products = hold.lines.product_ids();
        let hold = hold.clone();
        let key = idempotency_key.map(str::to_owned);
        let token = new_access_token();
        self.write(&products, move |tx| {
            Box::pin(async move {
                Ok(
                    match db::holds::create(tx, &hold, key.as_deref(), &token).await? {
                        db::holds::Created::New { receipt, changed } => (
                            CreatedHold {
                                receipt,
                                replayed: false,
                            },
                            live_states(changed),
                        ),
                        db::holds::Created::Replayed(receipt) => (
                            CreatedHold {
                                receipt,
                                replayed: true,
                            },
                            Vec::new(),
                        ),
                    },
                )
            })
        })
        .await
    }

    /// A hold `bearer` opens.
    pub(crate) async fn hold(&self, id: uuid::Uuid, bearer: &Bearer) -> Result<Hold> {
        let mut conn = self.inner.db.acquire().await?;
        db::holds::find(&mut conn, id)
            .await?
            .filter(|stored| bearer.opens(Some(&stored.access_token)))
            .map(|stored| stored.hold)
            .ok_or_else(|| Error::hold_not_found(id))
    }

    /// Releases a hold `bearer` opens; its units are available again once this answers.
    pub(crate) async fn release_hold(&self, id: uuid::Uuid, bearer: Bearer) -> Result<Hold> {
        self.write(&[], move |tx| {
            Box::pin(async move {
                let released = db::holds::release(tx, id, &bearer).await?;
                Ok((released.hold.hold, live_states(released.changed)))
            })
        })
        .await
    }

    /// Removes lapsed hold entries from up to `limit` products (housekeeping: they count for no
    /// read already); returns how many products changed.
    pub(crate) async fn sweep_lapsed_holds(&self, limit: i64) -> Result<usize> {
        self.write(&[], move |tx| {
            Box::pin(async move {
                let changed = db::holds::sweep_lapsed(tx, limit).await?;
                Ok((changed.len(), live_states(changed)))
            })
        })
        .await
    }

    /// Runs `change` in a transaction, then commits and publishes what it changed.
    ///
    /// The write runs in a task of its own, so it goes to the end even when the request that
    /// asked for it goes away (the client disconnects, the request times out): a transaction
    /// dropped half way through, with the connection it holds, is what the pool copes with
    /// worst, and a write cut between commit and publish would leave its repair to the relay.
    ///
    /// The write first takes a place at the gate of every product it names (`write_gate`):
    /// past the bound it answers 503 `busy` without touching Postgres.
    async fn write<T, F>(&self, products: &[i64], change: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection) -> Change<'c, T> + Send + 'static,
    {
        let pass = self.inner.gate.enter(products).await?;
        let catalog = self.clone();
        tokio::spawn(async move {
            let mut tx = catalog.inner.db.begin().await?;
            let (answer, changed) = change(&mut tx).await?;
            let unpublished = catalog.commit_and_publish(tx, &changed).await?;
            // The gate guards Postgres's row locks, which are released: the next write of
            // these products need not wait for the hand-off.
            drop(pass);
            if !unpublished.is_empty() {
                handoff::hand_off(
                    &catalog.inner.db,
                    catalog.inner.cache.instance(),
                    &unpublished,
                    catalog.inner.cache.handoff_wait(),
                )
                .await;
            }
            Ok(answer)
        })
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("write task failed: {e}")))?
    }

    /// Commits `tx` (whose changes the table's triggers recorded in the outbox), then publishes
    /// each change and queues the removal of the outbox row of each one published. A failed
    /// publish is not an error for the client: the write is committed; the changes whose
    /// publish failed, as (product id, version), are returned for the hand-off.
    async fn commit_and_publish(
        &self,
        tx: Transaction<'static, Postgres>,
        changed: &[ProductState],
    ) -> Result<Vec<(i64, i64)>> {
        tx.commit().await?;
        let cache = &self.inner.cache;
        if changed.is_empty() || !cache.publishes() {
            return Ok(Vec::new());
        }
        self.inner.faults.maybe_crash_after_commit();
        if self.inner.faults.should_skip_publish() {
            return Ok(Vec::new());
        }
        self.inner.faults.maybe_delay_publish().await;
        let mut unpublished = Vec::new();
        for state in changed {
            self.inner
                .hooks
                .before_publish(PublishSite::WriteThrough, state.id())
                .await;
            if cache.publish(state).await.is_ok() {
                self.inner.sweeper.published(state.id(), state.version());
            } else {
                unpublished.push((state.id(), state.version()));
            }
        }
        Ok(unpublished)
    }

    /// This instance's name among the relays.
    pub(crate) fn instance(&self) -> &str {
        self.inner.cache.instance()
    }
}

fn live_states(products: Vec<Product>) -> Vec<ProductState> {
    products.into_iter().map(ProductState::Live).collect()
}

/// The answer and the change of a write that leaves one live product.
fn live(product: Product) -> Result<(Product, Vec<ProductState>)> {
    Ok((product.clone(), vec![ProductState::Live(product)]))
}
