//! Removes the outbox rows of changes their writer published, in batches, off the request path.
//!
//! A write's outbox row is written by a trigger in the write's transaction. Removing it in a
//! second transaction before answering cost every write a round trip and a WAL flush (half of a
//! `versioned` write's time). So the writer only queues (product id, version) once its publish
//! succeeded, and this task deletes what is queued every `INTERVAL`, in one statement, without
//! waiting for the flush. If the instance dies first, the relay publishes those rows again after
//! its grace period: a publish of a version already stored changes nothing.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::db;

/// Time between two batches: well under the relay's grace period, so that the relay never
/// takes a row its writer published.
const INTERVAL: Duration = Duration::from_millis(20);
/// Rows per statement at most.
const BATCH: usize = 2_000;

/// The writers' side: queues the rows of published changes.
#[derive(Clone)]
pub struct Sweeper(mpsc::UnboundedSender<(i64, i64)>);

/// The task's side, until it runs.
pub(crate) struct SweepQueue(mpsc::UnboundedReceiver<(i64, i64)>);

pub(crate) fn channel() -> (Sweeper, SweepQueue) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (Sweeper(sender), SweepQueue(receiver))
}

impl Sweeper {
    /// The change of `product` to `version` is published: its outbox row may go.
    pub fn published(&self, product: i64, version: i64) {
        // The task stops only with the instance; a row it misses is relayed again, harmlessly.
        let _ = self.0.send((product, version));
    }
}

/// Runs until the task is aborted or every `Sweeper` is dropped.
pub(crate) async fn run(SweepQueue(mut queue): SweepQueue, db: PgPool) {
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        if let Err(error) = db::outbox::forget_published(&db, &batch).await {
            tracing::warn!(%error, rows = batch.len(), "removing published outbox rows failed; the relay will take them");
        }
        batch.clear();
        tokio::time::sleep(INTERVAL).await;
    }
}
