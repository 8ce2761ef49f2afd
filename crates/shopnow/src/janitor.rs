//! Housekeeping every instance runs in the background: expired idempotency keys are deleted, so
//! that the table does not grow with every order for ever.
//!
//! Instances share the work without coordinating: each pass deletes a batch of expired rows it
//! can lock (`SKIP LOCKED`), so two instances never wait on each other.

use std::time::Duration;

use crate::{catalog::Catalog, db};

/// Time between two passes; the first runs at start.
const INTERVAL: Duration = Duration::from_secs(60);
/// Rows deleted per statement: short transactions, short locks.
const BATCH: i64 = 1_000;
/// Rows deleted per pass at most; a larger backlog is cleared over the next passes.
const MAX_PER_PASS: u64 = 100_000;

/// Runs until the task is aborted.
pub async fn run(catalog: Catalog, key_retention: Duration) {
    let deleted = metrics::counter!("idempotency_keys_expired_total");
    let mut interval = tokio::time::interval(INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let mut pass = 0;
        while pass < MAX_PER_PASS {
            let batch = async {
                let mut conn = catalog.db().acquire().await?;
                db::orders::delete_expired_idempotency_keys(&mut conn, key_retention, BATCH).await
            };
            match batch.await {
                Ok(0) => break,
                Ok(rows) => {
                    pass += rows;
                    deleted.increment(rows);
                }
                Err(error) => {
                    tracing::warn!(%error, "deleting expired idempotency keys failed");
                    break;
                }
            }
        }
        if pass > 0 {
            tracing::debug!(deleted = pass, "expired idempotency keys deleted");
        }
    }
}
