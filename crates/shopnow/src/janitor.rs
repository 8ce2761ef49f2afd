//! Housekeeping every instance runs in the background: expired idempotency keys, and holds that
//! ended as long ago, are deleted, so that the tables do not grow with every order for ever; and, in instances whose strategy
//! never publishes (`ttl`, `none`), outbox rows older than `OUTBOX_RETENTION`, which no relay
//! of theirs would ever take (a `versioned` deployment's relays take them within a second).
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
/// How long a non-publishing deployment keeps outbox rows: an instance of a publishing strategy
/// sharing the database (a migration from `ttl` to `versioned`) has had every chance to take them.
const OUTBOX_RETENTION: Duration = Duration::from_secs(3600);

/// Runs until the task is aborted.
pub(crate) async fn run(catalog: Catalog, key_retention: Duration) {
    let keys_deleted = metrics::counter!("idempotency_keys_expired_total");
    let mut interval = tokio::time::interval(INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let keys = delete_in_batches(&catalog, "expired idempotency keys", |conn| {
            Box::pin(db::orders::delete_expired_idempotency_keys(
                conn,
                key_retention,
                BATCH,
            ))
        })
        .await;
        keys_deleted.increment(keys);
        // Ended holds are kept as long as idempotency keys, which may name them.
        delete_in_batches(&catalog, "ended holds", |conn| {
            Box::pin(db::holds::delete_ended(conn, key_retention, BATCH))
        })
        .await;
        if !catalog.cache().publishes() {
            delete_in_batches(&catalog, "old outbox rows", |conn| {
                Box::pin(async move {
                    Ok(db::outbox::delete_older_than(conn, OUTBOX_RETENTION, BATCH).await?)
                })
            })
            .await;
        }
    }
}

/// Runs `delete` (a batch, returning its row count) until it deletes nothing or the pass's
/// budget is spent; returns how many rows went.
async fn delete_in_batches(
    catalog: &Catalog,
    what: &str,
    delete: impl for<'c> Fn(
        &'c mut sqlx::PgConnection,
    ) -> futures::future::BoxFuture<'c, crate::error::Result<u64>>,
) -> u64 {
    let mut deleted = 0;
    while deleted < MAX_PER_PASS {
        let batch = async {
            let mut conn = catalog.db().acquire().await?;
            delete(&mut conn).await
        };
        match batch.await {
            Ok(0) => break,
            Ok(rows) => deleted += rows,
            Err(error) => {
                tracing::warn!(%error, "deleting {what} failed");
                break;
            }
        }
    }
    if deleted > 0 {
        tracing::debug!(deleted, "{what} deleted");
    }
    deleted
}
