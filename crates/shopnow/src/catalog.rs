//! Product, hold and order reads and writes: Postgres first, then the cache.
//!
//! Every write commits its change (the table's triggers add its outbox row in the same
//! transaction), publishes the committed state to the cache, and only then answers; the outbox
//! row is removed in the background (`sweeper`). If the publish does not happen (Redis
//! unreachable, or the process died), the row stays and the relay publishes it. Handlers call
//! this and nothing else, so no write can forget the cache.

use std::{collections::HashMap, panic::AssertUnwindSafe, sync::Arc};

use futures::FutureExt;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::{
    cache::{CacheHealth, CacheStats, CacheStrategy, PageRead, ProductCache, ProductRead},
    db::{self, Database},
    error::{Error, Result},
    faults::WriteFaults,
    group_commit::{Change, Groups, Pending, Queued, QueuedWrite},
    handoff,
    hooks::{Hooks, PublishSite},
    model::{
        new_access_token, Bearer, Category, CategoryPatch, Hold, HoldLines, HoldReceipt,
        HoldStatus, Listing, NewCategory, NewProduct, OrderReceipt, OrderSource, Product,
        ProductHold, ProductPatch, ProductState, StoredOrder,
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
    /// The single-product writes waiting for their product's next group commit.
    groups: Groups,
    /// The purchase limit of a product without its own (`SHOPNOW_MAX_LINE_QUANTITY`).
    default_purchase_limit: i64,
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

impl Catalog {
    pub fn new(
        database: Database,
        cache: ProductCache,
        faults: WriteFaults,
        hooks: Hooks,
        gate: GateLimits,
        default_purchase_limit: i64,
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
                groups: Groups::new(gate.in_flight + gate.queued, gate.queue_wait),
                default_purchase_limit,
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

    /// A list page (`GET /v1/products`), through the cache like a product read.
    pub(crate) async fn read_page(&self, listing: &Listing) -> Result<PageRead> {
        self.inner.cache.read_page(&self.inner.db, listing).await
    }

    pub(crate) async fn categories(&self) -> Result<Vec<Category>> {
        let mut conn = self.inner.db.acquire().await?;
        db::categories::all(&mut conn).await
    }

    pub(crate) async fn category(&self, slug: &str) -> Result<Category> {
        let mut conn = self.inner.db.acquire().await?;
        db::categories::find(&mut conn, slug)
            .await?
            .ok_or_else(|| db::categories::not_found(slug))
    }

    pub(crate) async fn create_category(&self, new: &NewCategory) -> Result<Category> {
        let new = new.clone();
        self.write(&[], move |tx| {
            Box::pin(async move { Ok((db::categories::insert(tx, &new).await?, Vec::new())) })
        })
        .await
    }

    /// Renames and/or moves a category; a move publishes every product it lists (their
    /// `listed_in` changed) before it answers.
    pub(crate) async fn update_category(
        &self,
        slug: &str,
        patch: &CategoryPatch,
    ) -> Result<Category> {
        let (slug, patch) = (slug.to_owned(), patch.clone());
        self.write(&[], move |tx| {
            Box::pin(async move {
                let (category, relisted) = db::categories::update(tx, &slug, &patch).await?;
                Ok((category, live_states(relisted)))
            })
        })
        .await
    }

    /// Deletes a category that lists nothing; its cached pages (empty) go with it.
    pub(crate) async fn delete_category(&self, slug: &str) -> Result<()> {
        let owned = slug.to_owned();
        self.write(&[], move |tx| {
            Box::pin(async move {
                db::categories::delete(tx, &owned).await?;
                Ok(((), Vec::new()))
            })
        })
        .await?;
        if let Err(error) = self.inner.cache.forget_pages(slug).await {
            tracing::warn!(category = slug, %error, "the pages of a deleted category stay cached until they expire");
        }
        Ok(())
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
            Box::pin(async move {
                let adjusted = db::products::adjust_stock(tx, id, delta).await?;
                // A correction down can only take the product off pages, and so can a delivery
                // of a product that had units available already (the statement changed the
                // stock alone, so it had `available - delta`): only one that brings it back in
                // stock may put it on a page.
                match delta < 0 || adjusted.available - delta > 0 {
                    true => Ok((adjusted.clone(), taking_states(vec![adjusted]))),
                    false => live(adjusted),
                }
            })
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
            OrderSource::Hold(id) => self.products_of_hold(*id).await?,
        };
        let source = source.clone();
        let key = idempotency_key.map(str::to_owned);
        let token = new_access_token();
        let limit = self.inner.default_purchase_limit;
        self.write(&products, move |tx| {
            Box::pin(async move {
                let placed =
                    db::orders::place(tx, &source, bearer.as_ref(), key.as_deref(), &token, limit)
                        .await?;
                Ok(match placed {
                    db::orders::Placed::New { receipt, changed } => (
                        PlacedOrder {
                            receipt,
                            replayed: false,
                        },
                        taking_states(changed),
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
        let limit = self.inner.default_purchase_limit;
        self.write(&products, move |tx| {
            Box::pin(async move {
                Ok(
                    match db::holds::create(tx, &hold, key.as_deref(), &token, limit).await? {
                        db::holds::Created::New { receipt, changed } => (
                            CreatedHold {
                                receipt,
                                replayed: false,
                            },
                            taking_states(changed),
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
        let products = self.products_of_hold(id).await?;
        self.write(&products, move |tx| {
            Box::pin(async move {
                let released = db::holds::release(tx, id, &bearer).await?;
                Ok((released.hold.hold, live_states(released.changed)))
            })
        })
        .await
    }

    /// Up to `limit` live holds of product `id`, in id order after `after` (for an operator).
    pub(crate) async fn live_holds_of(
        &self,
        id: i64,
        after: Option<uuid::Uuid>,
        limit: i64,
    ) -> Result<Vec<ProductHold>> {
        let mut conn = self.inner.db.acquire().await?;
        db::holds::live_of_product(&mut conn, id, after, limit).await
    }

    /// Releases the holds of product `id` live when it starts (each whole, with its other
    /// products' units: a hold is all or nothing), as the admin; returns how many it released.
    /// Each release is a write of its own, published before the next; a hold made meanwhile is
    /// kept, one converted meanwhile stays an order.
    pub(crate) async fn release_holds_of(&self, id: i64) -> Result<usize> {
        let mut live = Vec::new();
        let mut after = None;
        loop {
            let page = self.live_holds_of(id, after, 1_000).await?;
            let Some(last) = page.last() else { break };
            after = uuid::Uuid::try_parse(&last.id).ok();
            live.extend(
                page.into_iter()
                    .filter_map(|hold| uuid::Uuid::try_parse(&hold.id).ok()),
            );
            if after.is_none() {
                break;
            }
        }
        let mut released = 0;
        for hold in live {
            match self.release_hold(hold, Bearer::Admin).await {
                Ok(hold) if hold.status == HoldStatus::Released => released += 1,
                // Lapsed or converted meanwhile: nothing to release.
                Ok(_) | Err(Error::HoldConverted(_) | Error::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(released)
    }

    /// The products hold `id` names, so that a write of the hold goes through their gate and
    /// group like every other write of them.
    async fn products_of_hold(&self, id: uuid::Uuid) -> Result<Vec<i64>> {
        let mut conn = self.inner.db.acquire().await?;
        db::holds::products_of(&mut conn, id).await
    }

    /// Removes lapsed hold entries from up to `limit` products (housekeeping: they count for no
    /// read already); returns how many products changed.
    pub(crate) async fn sweep_lapsed_holds(&self, limit: i64) -> Result<usize> {
        self.write(&[], move |tx| {
            Box::pin(async move {
                let changed = db::holds::sweep_lapsed(tx, limit).await?;
                // What lapsed stopped counting at its expiry already: no page changes now.
                Ok((changed.len(), taking_states(changed)))
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
    /// A write of one product joins that product's group (`group_commit`): it commits with the
    /// other writes of the product waiting on this instance. A write of several runs alone.
    /// Either first takes a place at the gate of every product it names (`write_gate`): past
    /// the bound it answers 503 `busy` without touching Postgres.
    async fn write<T, F>(&self, products: &[i64], change: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection) -> Change<'c, T> + Send + 'static,
    {
        if let [product] = products {
            return self.write_in_group(*product, change).await;
        }
        let pass = self.inner.gate.enter(products).await?;
        let catalog = self.clone();
        tokio::spawn(async move {
            let mut tx = catalog.inner.db.begin().await?;
            let (answer, changed) = change(&mut tx).await?;
            let unpublished = catalog.commit_and_publish(tx, &changed).await?;
            // The gate guards Postgres's row locks, which are released: the next write of
            // these products need not wait for the hand-off.
            drop(pass);
            catalog.hand_off(&unpublished).await;
            Ok(answer)
        })
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("write task failed: {e}")))?
    }

    /// Queues a write of `product` for its group, starting the product's runner if none is at
    /// work, and waits for the answer.
    async fn write_in_group<T, F>(&self, product: i64, change: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection) -> Change<'c, T> + Send + 'static,
    {
        let (write, answer) = Pending::queued(change);
        let (queued, waiting) = self.inner.groups.push(product, write)?;
        if queued == Queued::StartRunner {
            tokio::spawn(self.clone().run_groups(product));
        }
        self.inner.hooks.write_queued(product, waiting).await;
        answer.await.map_err(|_| {
            Error::Internal(anyhow::anyhow!(
                "the group of a write of product {product} ended without an answer"
            ))
        })?
    }

    /// `product`'s runner: commits its groups one after another until none is queued.
    async fn run_groups(self, product: i64) {
        loop {
            let group = self.inner.groups.next_group(product);
            if group.is_empty() {
                return;
            }
            // A panic in one write must not end the runner: the product's queue would wait
            // for it forever. The group's writes are dropped, and their requests answer 500.
            if AssertUnwindSafe(self.commit_group(product, group))
                .catch_unwind()
                .await
                .is_err()
            {
                tracing::error!(product, "a group of writes panicked; its writes answer 500");
            }
        }
    }

    /// Commits and publishes `group`, then answers each of its writes.
    async fn commit_group(&self, product: i64, mut group: Vec<Box<dyn QueuedWrite>>) {
        let outcome = match self.inner.gate.enter(&[product]).await {
            Ok(pass) => {
                let outcome = self.run_group(product, &mut group).await;
                drop(pass);
                outcome
            }
            Err(error) => Err(error),
        };
        match outcome {
            Err(error) => group
                .into_iter()
                .for_each(|write| write.answer(Some(&error))),
            Ok(unpublished) if unpublished.is_empty() => {
                group.into_iter().for_each(|write| write.answer(None))
            }
            // The runner goes on with the next group while these wait for the hand-off.
            Ok(unpublished) => {
                let catalog = self.clone();
                tokio::spawn(async move {
                    catalog.hand_off(&unpublished).await;
                    group.into_iter().for_each(|write| write.answer(None));
                });
            }
        }
    }

    /// Runs the writes of `group` in one transaction and commits and publishes what they
    /// changed; the changes whose publish failed are returned, as `commit_and_publish` does.
    ///
    /// A write alone runs as any other write: if it fails, nothing is committed. Writes
    /// together find the row locked for them first, and each runs in a savepoint: one that
    /// fails is rolled back to it (its answer keeps its error) and the next goes on.
    async fn run_group(
        &self,
        product: i64,
        group: &mut [Box<dyn QueuedWrite>],
    ) -> Result<Vec<(i64, i64)>> {
        let mut tx = self.inner.db.begin().await?;
        let mut changed = Vec::new();
        if let [alone] = group {
            match alone.run(&mut tx).await {
                Some(states) => changed = states,
                // Dropping `tx` rolls it back.
                None => return Ok(Vec::new()),
            }
        } else {
            db::lock_product(&mut tx, product).await?;
            for write in group.iter_mut() {
                // Not released after the write: the next savepoint nests, and a rollback to
                // this name goes to the latest one (a round trip less per write).
                sqlx::query("SAVEPOINT grouped_write")
                    .execute(&mut *tx)
                    .await?;
                match write.run(&mut tx).await {
                    Some(states) => changed.extend(states),
                    None => {
                        sqlx::query("ROLLBACK TO SAVEPOINT grouped_write")
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
        }
        let unpublished = self.commit_and_publish(tx, &changed).await?;
        if group.len() > 1 {
            metrics::counter!("write_group_commits_total").increment(1);
            metrics::counter!("write_group_writes_total").increment(group.len() as u64);
        }
        Ok(unpublished)
    }

    /// Waits until no instance shows a copy older than `unpublished` (see `handoff`).
    async fn hand_off(&self, unpublished: &[(i64, i64)]) {
        if !unpublished.is_empty() {
            handoff::hand_off(
                &self.inner.db,
                self.inner.cache.instance(),
                unpublished,
                self.inner.cache.handoff_wait(),
            )
            .await;
        }
    }

    /// Commits `tx` (whose changes the table's triggers recorded in the outbox), then publishes
    /// each changed product's last state and queues the removal of the outbox rows of every
    /// change published. A failed publish is not an error for the client: the write is
    /// committed; the changes whose publish failed, as (product id, version), are returned for
    /// the hand-off.
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
        // A group changes a product once per write, each change a version: its last state
        // stands for all of them (a copy of version v is current for every change up to v).
        let mut last: HashMap<i64, &ProductState> = HashMap::new();
        for state in changed {
            last.entry(state.id())
                .and_modify(|seen| {
                    if state.version() > seen.version() {
                        *seen = state
                    }
                })
                .or_insert(state);
        }
        let mut unpublished = Vec::new();
        for (id, state) in last {
            self.inner
                .hooks
                .before_publish(PublishSite::WriteThrough, id)
                .await;
            // The last state stands for the group's writes of the product: its pages are
            // renewed if any of them may bring it onto one.
            let may_enter_pages = changed
                .iter()
                .any(|change| change.id() == id && change.may_enter_pages());
            let published = match (state, may_enter_pages) {
                (ProductState::Live(product), true) if product.cannot_enter_pages => {
                    let state = ProductState::Live(Product {
                        cannot_enter_pages: false,
                        ..product.clone()
                    });
                    cache.publish(&state).await.is_ok()
                }
                _ => cache.publish(state).await.is_ok(),
            };
            let versions = changed
                .iter()
                .filter(|change| change.id() == id)
                .map(|change| (id, change.version()));
            if published {
                versions.for_each(|(id, version)| self.inner.sweeper.published(id, version));
            } else {
                unpublished.extend(versions);
            }
        }
        Ok(unpublished)
    }

    /// This instance's name among the relays.
    pub(crate) fn instance(&self) -> &str {
        self.inner.cache.instance()
    }
}

/// The states a write leaves that can only take units away (`Product::cannot_enter_pages`).
fn taking_states(products: Vec<Product>) -> Vec<ProductState> {
    products
        .into_iter()
        .map(|product| {
            ProductState::Live(Product {
                cannot_enter_pages: true,
                ..product
            })
        })
        .collect()
}

fn live_states(products: Vec<Product>) -> Vec<ProductState> {
    products.into_iter().map(ProductState::Live).collect()
}

/// The answer and the change of a write that leaves one live product.
fn live(product: Product) -> Result<(Product, Vec<ProductState>)> {
    Ok((product.clone(), vec![ProductState::Live(product)]))
}
