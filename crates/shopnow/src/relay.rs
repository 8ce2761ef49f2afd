//! The outbox relay: publishes product changes whose publish was lost.
//!
//! Every instance runs one. Each tick it claims outbox rows older than the grace period with
//! `FOR UPDATE SKIP LOCKED` (so relays of several instances never hold the same row at once),
//! re-reads each product's current row, publishes it, and deletes the rows in the same
//! transaction. Publishing the current row rather than the outbox's version is what makes a
//! late repair safe: the stored version only ever rises, and the current row is the newest.
//!
//! Repair bound: a row is taken once it is older than `GRACE`, at the next pass (every
//! `POLL_INTERVAL`). While Redis refuses publishes the relay backs off, doubling its pause up to
//! `MAX_BACKOFF`, so a lost publish is repaired within `REPAIR_BOUND` of Redis answering again.

use std::{collections::BTreeMap, time::Duration};

use sqlx::{Connection, PgPool};

use crate::{
    catalog::Catalog,
    db::{self, outbox::PendingPublish},
    hooks::PublishSite,
};

/// How old a row must be before the relay takes it; the writer usually removes it sooner.
pub const GRACE: Duration = Duration::from_millis(500);
/// How often the relay looks for rows left behind.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Longest time a lost publish stays unrepaired once Redis answers (documented bound).
pub const REPAIR_BOUND: Duration = Duration::from_millis(1_000);
/// Longest wait between passes while Redis fails.
const MAX_BACKOFF: Duration = Duration::from_millis(800);
/// Rows claimed per transaction.
const BATCH: i64 = 500;

/// Runs until the task is aborted.
pub async fn run(catalog: Catalog) {
    let repairs = metrics::counter!("outbox_repairs_total");
    let backlog_rows = metrics::gauge!("outbox_backlog");
    let oldest_age = metrics::gauge!("outbox_oldest_age_seconds");
    let mut pause = POLL_INTERVAL;
    loop {
        tokio::time::sleep(pause).await;
        match relay_once(&catalog).await {
            Ok(Pass { repaired, complete }) => {
                repairs.increment(repaired);
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

/// What one pass did.
pub struct Pass {
    /// Products whose lost publish was repaired.
    pub repaired: u64,
    /// False when a publish failed and rows were left for a later pass.
    pub complete: bool,
}

/// One pass: publishes what was left behind.
pub async fn relay_once(catalog: &Catalog) -> anyhow::Result<Pass> {
    let db: &PgPool = catalog.db();
    let mut conn = db.acquire().await?;
    let mut tx = conn.begin().await?;
    let claimed = db::outbox::claim_left_behind(&mut tx, GRACE, BATCH).await?;
    if claimed.is_empty() {
        return Ok(Pass {
            repaired: 0,
            complete: true,
        });
    }
    let mut rows_by_product: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for PendingPublish { id, product_id, .. } in claimed {
        rows_by_product.entry(product_id).or_default().push(id);
    }

    let mut done = Vec::new();
    let mut repaired = 0;
    let mut complete = true;
    for (product_id, rows) in rows_by_product {
        let Some(current) = db::products::load_state(&mut tx, product_id).await? else {
            done.extend(rows); // the product is gone entirely; nothing to publish
            continue;
        };
        catalog
            .hooks()
            .before_publish(PublishSite::Relay, product_id)
            .await;
        if catalog.cache().publish(&current).await.is_err() {
            // Redis is unreachable: keep the rest for the next pass.
            complete = false;
            break;
        }
        tracing::info!(
            product = product_id,
            version = current.version(),
            "outbox relay repaired a lost publish"
        );
        repaired += 1;
        done.extend(rows);
    }
    db::outbox::delete_ids(&mut tx, &done).await?;
    tx.commit().await?;
    Ok(Pass { repaired, complete })
}
