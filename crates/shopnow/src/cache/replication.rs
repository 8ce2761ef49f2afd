//! Publishes confirmed by replicas, for a Redis with replicas (`SHOPNOW_REDIS_REPLICAS`).
//!
//! Replication is asynchronous: a primary acknowledges a publish, then may die before its
//! replica received it; the replica is promoted holding the previous version, and nothing would
//! ever repair it. So with replicas a publish counts only once `WAIT <replicas> <timeout>` says
//! enough replicas have it; until then its outbox row stays, and the relay publishes it again
//! (to the new primary, after a failover) until it is confirmed.
//!
//! `WAIT` covers every write this connection sent before it, and blocks the connection while it
//! waits. So publishes have a connection of their own (`RedisClient`), and one `WAIT` serves
//! every publish that asked while the previous one was in flight: a group commit for
//! replication, one `WAIT` per round trip to the replica however many publishes there are.
//!
//! `WAIT` only covers writes: a publish that stores nothing (the copy is missing, or newer)
//! still replaces the fill lease with a fresh token (`publish.lua`), a write that makes the
//! `WAIT` cover everything the primary did before it.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, OnceCell};

use super::redis_client::{CacheError, Connection};

/// The replicas' answer to one `WAIT`: how many confirmed, or why the call failed.
type WaitOutcome = Result<u32, String>;

pub struct ReplicaConfirmer {
    connection: Connection,
    replicas: u32,
    wait_timeout: Duration,
    /// The running task's queue of publishes waiting for the next `WAIT`.
    queue: OnceCell<mpsc::UnboundedSender<oneshot::Sender<WaitOutcome>>>,
}

impl ReplicaConfirmer {
    pub fn new(connection: Connection, replicas: u32, wait_timeout: Duration) -> Self {
        Self {
            connection,
            replicas,
            wait_timeout,
            queue: OnceCell::new(),
        }
    }

    /// Waits for the next `WAIT` sent after this call; `Unconfirmed` when it found fewer
    /// replicas than required, in time.
    pub async fn confirm(&self, limit: Duration) -> Result<(), CacheError> {
        let queue = self.queue.get_or_init(|| async { self.start() }).await;
        let (reply, answer) = oneshot::channel();
        if queue.send(reply).is_err() {
            return Err(CacheError::Protocol(
                "the replication confirmer stopped".into(),
            ));
        }
        match tokio::time::timeout(limit + self.wait_timeout, answer).await {
            Ok(Ok(Ok(acked))) if acked >= self.replicas => Ok(()),
            Ok(Ok(Ok(acked))) => Err(CacheError::Unconfirmed {
                acked,
                wanted: self.replicas,
            }),
            Ok(Ok(Err(error))) => Err(CacheError::Protocol(error)),
            Ok(Err(_)) => Err(CacheError::Protocol(
                "the replication confirmer stopped".into(),
            )),
            Err(_) => Err(CacheError::Timeout(limit + self.wait_timeout)),
        }
    }

    fn start(&self) -> mpsc::UnboundedSender<oneshot::Sender<WaitOutcome>> {
        let (queue, mut waiting) = mpsc::unbounded_channel::<oneshot::Sender<WaitOutcome>>();
        let (connection, replicas, timeout) =
            (self.connection.clone(), self.replicas, self.wait_timeout);
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while waiting.recv_many(&mut batch, usize::MAX).await > 0 {
                // Every publish in `batch` was sent before this WAIT, on the same connection.
                let outcome = wait(&connection, replicas, timeout).await;
                for reply in batch.drain(..) {
                    let _ = reply.send(outcome.clone());
                }
            }
        });
        queue
    }
}

async fn wait(connection: &Connection, replicas: u32, timeout: Duration) -> WaitOutcome {
    let call = async {
        let mut live = connection.live().await.map_err(|e| e.to_string())?;
        redis::cmd("WAIT")
            .arg(replicas)
            .arg(timeout.as_millis() as u64)
            .query_async::<u32>(&mut live)
            .await
            .map_err(|e| e.to_string())
    };
    // WAIT answers by its own timeout; this bounds a connection that died meanwhile.
    tokio::time::timeout(timeout * 4, call)
        .await
        .unwrap_or_else(|_| Err("WAIT did not answer".to_string()))
}
