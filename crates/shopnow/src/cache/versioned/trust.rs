//! Whether this instance may serve a product's copy, from Redis or from memory: only while it
//! knows that no change of the product was shown before it was published.
//!
//! The rule every copy-writing path keeps covers what was published. What it cannot cover is a
//! change that nobody could publish: when Redis is away for every instance (paused, restarted,
//! cut off from a one-replica deployment), writers cannot wait for ever, and when Redis comes
//! back it still holds the copies from before their changes. Such a change is marked on its
//! outbox row before anyone shows it (`handed_off_at`, `crate::handoff`), and stays marked
//! until a relay publishes it.
//!
//! Every `LOOK_INTERVAL`, on a connection of its own (a pool busy with writes must not starve
//! it), this instance reads the products with a marked row. A look lets it serve copies of
//! every other product for `LEASE`, counted from when the look was *sent*: the look's snapshot
//! is taken later than that, so it sees every mark committed before the lease began. The
//! instance that marked a row waits `handoff::TRUST_WAIT` (a lease and a margin) after its
//! mark committed before it shows the change: by then every lease taken before the mark has
//! run out, and every later one was taken by a look that saw the mark. So no instance serves
//! a copy older than a change shown, however long Redis was away and whoever noticed it.
//!
//! A product whose copy is not trusted is read as a miss: a fill under a lease, which stores
//! what Postgres has (the rule lets a fill replace an older copy) and answers it.
//!
//! What it costs: one indexed query per `LOOK_INTERVAL` per instance, and on the hit path a
//! clock read and two atomic loads (the set is looked at only while it is not empty). Bounds:
//! an instance that cannot reach Postgres for longer than `LEASE` serves no copy (its reads
//! need Postgres, and answer 503 while it is away), since it cannot know what was shown
//! meanwhile; more than `MOST_PRODUCTS` marked products, and it trusts no copy until fewer are.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        RwLock,
    },
    time::{Duration, Instant},
};

use sqlx::{Connection, PgConnection, PgPool};

use crate::{db, handoff, model::ALL_SCOPE};

/// How long one look lets this instance serve copies, from when it was sent.
const LEASE: Duration = handoff::TRUST_LEASE;

/// Time between two looks: five per lease, so that a slow or failed look or two cost nothing.
pub(super) const LOOK_INTERVAL: Duration = Duration::from_millis(200);

/// Marked products a look reads at most; past that, no copy is trusted.
const MOST_PRODUCTS: i64 = 1_000;

pub(crate) struct Trust {
    epoch: Instant,
    /// When the lease ends, in nanoseconds since `epoch`; 0 before the first look.
    until_nanos: AtomicU64,
    /// Whether the last look found any marked product (the set is read only then).
    any_distrusted: AtomicBool,
    /// Whether it found more than `MOST_PRODUCTS`: no copy is trusted.
    all_distrusted: AtomicBool,
    distrusted: RwLock<HashSet<i64>>,
    /// The categories that list a marked product now: their cached pages may leave out a
    /// change shown unpublished (a product that moved into them).
    distrusted_scopes: RwLock<HashSet<String>>,
    distrusted_gauge: metrics::Gauge,
}

impl Default for Trust {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            until_nanos: AtomicU64::new(0),
            any_distrusted: AtomicBool::new(false),
            all_distrusted: AtomicBool::new(false),
            distrusted: RwLock::default(),
            distrusted_scopes: RwLock::default(),
            distrusted_gauge: metrics::gauge!("cache_untrusted_products"),
        }
    }
}

impl Trust {
    /// Whether a copy of product `id` may be served now.
    pub(crate) fn covers(&self, id: i64) -> bool {
        self.trusts(|| {
            self.distrusted
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&id)
        })
    }

    /// Whether a cached list page of `scope` (a category's slug, or `all`) may be served now:
    /// no product that the category lists, and for `all` no product at all, has a change that
    /// was shown unpublished. Its items are each checked with `covers` too.
    pub(crate) fn covers_scope(&self, scope: &str) -> bool {
        self.trusts(|| {
            scope == ALL_SCOPE
                || self
                    .distrusted_scopes
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(scope)
        })
    }

    /// Under a lease, and either nothing is marked or neither too much nor this (`marked`,
    /// looked at only when something is).
    fn trusts(&self, marked: impl FnOnce() -> bool) -> bool {
        // The lease first: `record` stores what a look found before the lease it gives.
        if !self.holds_lease() {
            return false;
        }
        if !self.any_distrusted.load(Ordering::Acquire) {
            return true;
        }
        !self.all_distrusted.load(Ordering::Acquire) && !marked()
    }

    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    fn holds_lease(&self) -> bool {
        self.nanos(Instant::now()) < self.until_nanos.load(Ordering::Acquire)
    }

    /// What a look sent at `sent` found: the marked products (more than `MOST_PRODUCTS` for
    /// "too many to list"). Looks are recorded in the order they were sent (one task).
    fn record(&self, sent: Instant, marked: Vec<(i64, Vec<String>)>) {
        let all = marked.len() as i64 > MOST_PRODUCTS;
        self.distrusted_gauge.set(marked.len() as f64);
        // Older leases may be combined with what this look found (it is newer, so at least as
        // right), never this lease with what an older look found: the sets go first.
        *self.distrusted.write().unwrap_or_else(|e| e.into_inner()) =
            marked.iter().map(|(id, _)| *id).collect();
        *self
            .distrusted_scopes
            .write()
            .unwrap_or_else(|e| e.into_inner()) = marked
            .iter()
            .flat_map(|(_, listed_in)| listed_in.iter().cloned())
            .collect();
        self.all_distrusted.store(all, Ordering::Release);
        self.any_distrusted
            .store(!marked.is_empty(), Ordering::Release);
        self.until_nanos
            .fetch_max(self.nanos(sent + LEASE), Ordering::AcqRel);
    }
}

/// Looks every `LOOK_INTERVAL` until the task is aborted.
pub(super) async fn watch(trust: &Trust, db: PgPool) {
    let mut connection: Option<PgConnection> = None;
    let mut interval = tokio::time::interval(LOOK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lapsed = false;
    loop {
        interval.tick().await;
        let sent = Instant::now();
        let looked = tokio::time::timeout(LEASE, look(&db, &mut connection)).await;
        match looked {
            Ok(Ok(marked)) => {
                if lapsed {
                    tracing::info!("this instance knows again which changes were shown unpublished; serving cached copies again");
                    lapsed = false;
                }
                trust.record(sent, marked);
            }
            failed => {
                // A connection that failed or hung is made again at the next look.
                connection = None;
                if !lapsed && !trust.holds_lease() {
                    let error = match failed {
                        Ok(Err(error)) => error.to_string(),
                        _ => format!("no answer within {LEASE:?}"),
                    };
                    tracing::warn!(
                        %error,
                        "cannot learn which changes were shown unpublished; no cached copy is \
                         served until Postgres answers again"
                    );
                    lapsed = true;
                }
            }
        }
    }
}

/// One look before the instance serves, on a connection of the pool.
pub(super) async fn first_look(trust: &Trust, db: &PgPool) {
    let sent = Instant::now();
    let looked = async {
        let mut conn = db.acquire().await?;
        db::outbox::handed_off_products(&mut conn, MOST_PRODUCTS + 1).await
    };
    match looked.await {
        Ok(marked) => trust.record(sent, marked),
        Err(error) => tracing::debug!(%error, "the first look for handed-off changes failed"),
    }
}

async fn look(
    db: &PgPool,
    connection: &mut Option<PgConnection>,
) -> sqlx::Result<Vec<(i64, Vec<String>)>> {
    let conn = match connection {
        Some(conn) => conn,
        None => connection.insert(PgConnection::connect_with(&db.connect_options()).await?),
    };
    db::outbox::handed_off_products(conn, MOST_PRODUCTS + 1).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_trusted_before_the_first_look() {
        assert!(!Trust::default().covers(1));
    }

    #[test]
    fn a_look_trusts_every_product_it_did_not_find_marked() {
        let trust = Trust::default();
        trust.record(Instant::now(), vec![(2, vec![]), (3, vec!["shoes".into()])]);
        assert!(trust.covers_scope("hats"));
        assert!(!trust.covers_scope("shoes"));
        assert!(!trust.covers_scope(ALL_SCOPE), "every product is in all");
        assert!(trust.covers(1));
        assert!(!trust.covers(2));
        assert!(!trust.covers(3));
        trust.record(Instant::now(), vec![]);
        assert!(trust.covers(2), "a later look that found no mark");
        assert!(trust.covers_scope(ALL_SCOPE));
    }

    #[test]
    fn too_many_marked_products_trust_none() {
        let trust = Trust::default();
        trust.record(
            Instant::now(),
            (0..=MOST_PRODUCTS).map(|id| (id + 10, vec![])).collect(),
        );
        assert!(!trust.covers(1));
    }

    #[test]
    fn a_lease_counts_from_when_its_look_was_sent() {
        let trust = Trust::default();
        trust.record(Instant::now() - LEASE, vec![]);
        assert!(!trust.covers(1), "a look sent a lease ago gives nothing");
        trust.record(Instant::now(), vec![]);
        assert!(trust.covers(1));
    }
}
