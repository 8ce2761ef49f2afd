//! The outbox relay: publishes the product changes nobody else publishes.
//!
//! Every instance runs one. It publishes two kinds of outbox rows (`db::outbox::claim`):
//! - changes made outside shopnow (an ERP sync, a bulk import, an admin in psql): at once. The
//!   triggers notify the relays at commit (`LISTEN shopnow_outbox`), so such a change reaches the
//!   cache within milliseconds, without polling;
//! - changes an instance made but did not publish (it died between commit and publish, or Redis
//!   refused): once they are older than `GRACE`, found by a poll every `POLL_INTERVAL` (the poll
//!   also covers notifications lost while the listening connection was down).
//!
//! A pass claims a batch with `FOR UPDATE SKIP LOCKED` (the relays of several instances share
//! the work and never hold the same row), re-reads every product of the batch in one query,
//! publishes them concurrently, and deletes the rows in the same transaction. Publishing the
//! current row rather than the outbox's version is what makes a late repair safe: a publish only
//! ever replaces an older copy. A bulk change is drained batch after batch.
//!
//! Repair bound: a left-behind row is taken within `GRACE` + `POLL_INTERVAL`. While Redis refuses
//! publishes the relay backs off, doubling its pause up to `MAX_BACKOFF`, so a lost publish is
//! repaired within `REPAIR_BOUND` of Redis answering again.

use std::{collections::HashMap, time::Duration};

use futures::StreamExt;
use sqlx::{postgres::PgListener, Connection, PgPool};

use crate::{
    catalog::Catalog,
    db::{self, outbox::PendingPublish},
    hooks::PublishSite,
};

/// How old a row of an instance must be before the relay takes it; the writer usually removes
/// it sooner.
pub const GRACE: Duration = Duration::from_millis(500);
/// How often the relay looks for rows left behind, notification or not.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Longest time a lost publish stays unrepaired once Redis answers (documented bound).
pub const REPAIR_BOUND: Duration = Duration::from_millis(1_000);
/// Longest wait between passes while Redis fails.
const MAX_BACKOFF: Duration = Duration::from_millis(800);
/// Rows claimed per transaction.
const BATCH: i64 = 1_000;
/// Publishes of one batch in flight at once: they share Redis's connection, pipelined.
const CONCURRENT_PUBLISHES: usize = 64;

/// Runs until the task is aborted.
pub(crate) async fn run(catalog: Catalog, notifications: PgPool) {
    let metrics = RelayMetrics::new();
    let backlog_rows = metrics::gauge!("outbox_backlog");
    let oldest_age = metrics::gauge!("outbox_oldest_age_seconds");
    let mut listener = Listener::new(notifications);
    let mut pause = POLL_INTERVAL;
    loop {
        listener.wait(pause).await;
        match drain(&catalog, &metrics).await {
            Ok(complete) => {
                // Back off while Redis refuses publishes, but not so far that a repair waits
                // long after it returns.
                pause = if complete {
                    POLL_INTERVAL
                } else {
                    (pause * 2).min(MAX_BACKOFF)
                };
            }
            Err(error) => {
                tracing::warn!(%error, "outbox relay pass failed");
                pause = (pause * 2).min(MAX_BACKOFF);
            }
        }
        if let Ok((rows, age)) = db::outbox::backlog(catalog.db()).await {
            backlog_rows.set(rows as f64);
            oldest_age.set(age);
        }
    }
}

/// Passes until a pass finds less than a full batch, or a publish fails; false in that case
/// (rows were left for a later pass).
async fn drain(catalog: &Catalog, metrics: &RelayMetrics) -> anyhow::Result<bool> {
    loop {
        let pass = relay_once(catalog, metrics).await?;
        if !pass.complete || pass.claimed < BATCH as usize {
            return Ok(pass.complete);
        }
    }
}

/// What one pass did.
struct Pass {
    claimed: usize,
    complete: bool,
}

/// The relay's counters, by where the change came from: `instance` (a publish its writer lost:
/// a repair) or `external` (a change made outside shopnow).
struct RelayMetrics {
    published: [metrics::Counter; 2],
    lag: [metrics::Histogram; 2],
}

impl RelayMetrics {
    fn new() -> Self {
        let origin = |by_instance: bool| if by_instance { "instance" } else { "external" };
        Self {
            published: [false, true]
                .map(|i| metrics::counter!("outbox_relayed_total", "origin" => origin(i))),
            // From the change's transaction start to its publish by the relay.
            lag: [false, true]
                .map(|i| metrics::histogram!("outbox_relay_lag_seconds", "origin" => origin(i))),
        }
    }

    fn count(&self, row: &PendingPublish) {
        let origin = usize::from(row.written_by_instance);
        self.published[origin].increment(1);
        self.lag[origin].record(row.age_seconds);
    }
}

/// One pass: claims a batch, publishes its products' current rows, deletes what was published.
async fn relay_once(catalog: &Catalog, metrics: &RelayMetrics) -> anyhow::Result<Pass> {
    let mut conn = catalog.db().acquire().await?;
    let mut tx = conn.begin().await?;
    let claimed = db::outbox::claim(
        &mut tx,
        catalog.instance(),
        (GRACE, catalog.cache().handoff_wait()),
        BATCH,
    )
    .await?;
    let mut rows_of: HashMap<i64, Vec<&PendingPublish>> = HashMap::new();
    for row in &claimed {
        rows_of.entry(row.product_id).or_default().push(row);
    }
    let products: Vec<i64> = rows_of.keys().copied().collect();
    // Products a pass publishes are re-read now, after the claim: what is published is at least
    // as new as every claimed change.
    let states = db::products::load_states(&mut tx, &products).await?;

    let outcomes: Vec<(i64, bool)> = futures::stream::iter(states)
        .map(|state| {
            let catalog = catalog.clone();
            async move {
                catalog
                    .hooks()
                    .before_publish(PublishSite::Relay, state.id())
                    .await;
                (state.id(), catalog.cache().publish(&state).await.is_ok())
            }
        })
        .buffer_unordered(CONCURRENT_PUBLISHES)
        .collect()
        .await;

    let mut done: Vec<i64> = Vec::with_capacity(claimed.len());
    let mut complete = true;
    for (product, ok) in outcomes {
        let rows = rows_of.remove(&product).unwrap_or_default();
        if ok {
            for row in rows {
                metrics.count(row);
                done.push(row.id);
            }
        } else {
            complete = false; // Redis refused: the rows stay for a later pass
        }
    }
    // What is left is products gone from the table entirely (never, since deletes are refused;
    // kept safe): nothing to publish.
    done.extend(rows_of.values().flatten().map(|row| row.id));
    if !done.is_empty() {
        db::outbox::delete_ids(&mut tx, &done).await?;
    }
    tx.commit().await?;
    Ok(Pass {
        claimed: claimed.len(),
        complete,
    })
}

/// `LISTEN shopnow_outbox` on a connection of its own, reconnected when it drops.
struct Listener {
    pool: PgPool,
    listener: Option<PgListener>,
}

impl Listener {
    fn new(pool: PgPool) -> Self {
        Self {
            pool,
            listener: None,
        }
    }

    /// Returns on a notification, when the listening connection drops (notifications may have
    /// been lost: worth a pass), or after `timeout`.
    async fn wait(&mut self, timeout: Duration) {
        if self.listener.is_none() {
            self.listener = self.listen().await;
        }
        let Some(listener) = &mut self.listener else {
            tokio::time::sleep(timeout).await;
            return;
        };
        tokio::select! {
            received = listener.try_recv() => {
                if let Err(error) = received {
                    tracing::debug!(%error, "outbox notifications lost; listening again");
                    self.listener = None;
                }
            }
            () = tokio::time::sleep(timeout) => {}
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let listening = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen(db::outbox::CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match listening.await {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::debug!(%error, "cannot listen for outbox notifications; polling");
                None
            }
        }
    }
}
