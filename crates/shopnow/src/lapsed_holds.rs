//! Takes lapsed hold entries off product rows, in bounded batches, off the request path.
//!
//! Only housekeeping: an entry stops counting at its expiry for every read, cached or not (a
//! `versioned` copy carries the entries and judges them when it is served). Removing it is a
//! change of the row like any other (a new version, published), which keeps the lists short
//! and lets the naive strategies, which judge nothing, catch up at last: how long they show a
//! lapsed hold is this interval plus their TTL or invalidation.
//!
//! Instances share the work without coordinating: each pass takes rows no other transaction
//! holds (`SKIP LOCKED`).

use std::time::Duration;

use crate::catalog::Catalog;

/// Products changed per transaction: short transactions, short locks.
const BATCH: i64 = 100;
/// Products changed per pass at most; a larger backlog is cleared over the next passes.
const MAX_PER_PASS: usize = 10_000;

/// Runs until the task is aborted.
pub(crate) async fn run(catalog: Catalog, interval: Duration) {
    let swept = metrics::counter!("hold_entries_swept_products_total");
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let mut changed = 0;
        while changed < MAX_PER_PASS {
            match catalog.sweep_lapsed_holds(BATCH).await {
                Ok(0) => break,
                Ok(count) => changed += count,
                Err(error) => {
                    tracing::debug!(%error, "sweeping lapsed holds failed");
                    break;
                }
            }
        }
        swept.increment(changed as u64);
    }
}
