//! Publishes confirmed by replicas, for a Redis with replicas (`SHOPNOW_REDIS_REPLICAS`, or
//! replicas seen by `observe_replication`).
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

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::sync::{mpsc, oneshot, OnceCell};

use super::{connection::Connection, error::CacheError};

/// The replicas' answer to one `WAIT`: how many confirmed, or why the call failed.
type WaitOutcome = Result<u32, String>;

pub(super) struct ReplicaConfirmer {
    connection: Connection,
    /// Replicas a publish must reach: `SHOPNOW_REDIS_REPLICAS`, or 1 when the operator left it
    /// at 0 and the primary has replicas all the same (`RedisClient::observe_replication`).
    replicas: Arc<AtomicU32>,
    wait_timeout: Duration,
    /// The running task's queue of publishes waiting for the next `WAIT`.
    queue: OnceCell<mpsc::UnboundedSender<oneshot::Sender<WaitOutcome>>>,
}

impl ReplicaConfirmer {
    pub(super) fn new(
        connection: Connection,
        replicas: Arc<AtomicU32>,
        wait_timeout: Duration,
    ) -> Self {
        Self {
            connection,
            replicas,
            wait_timeout,
            queue: OnceCell::new(),
        }
    }

    /// Waits for the next `WAIT` sent after this call; `Unconfirmed` when it found fewer
    /// replicas than required, in time.
    pub(super) async fn confirm(&self, limit: Duration) -> Result<(), CacheError> {
        let queue = self.queue.get_or_init(|| async { self.start() }).await;
        let (reply, answer) = oneshot::channel();
        if queue.send(reply).is_err() {
            return Err(CacheError::Protocol(
                "the replication confirmer stopped".into(),
            ));
        }
        let wanted = self.replicas.load(Ordering::Acquire);
        match tokio::time::timeout(limit + self.wait_timeout, answer).await {
            Ok(Ok(Ok(acked))) if acked >= wanted => Ok(()),
            Ok(Ok(Ok(acked))) => Err(CacheError::Unconfirmed { acked, wanted }),
            Ok(Ok(Err(error))) => Err(CacheError::Protocol(error)),
            Ok(Err(_)) => Err(CacheError::Protocol(
                "the replication confirmer stopped".into(),
            )),
            Err(_) => Err(CacheError::Timeout(limit + self.wait_timeout)),
        }
    }

    fn start(&self) -> mpsc::UnboundedSender<oneshot::Sender<WaitOutcome>> {
        let (queue, mut waiting) = mpsc::unbounded_channel::<oneshot::Sender<WaitOutcome>>();
        let (connection, replicas, timeout) = (
            self.connection.clone(),
            self.replicas.clone(),
            self.wait_timeout,
        );
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while waiting.recv_many(&mut batch, usize::MAX).await > 0 {
                // Every publish in `batch` was sent before this WAIT, on the same connection.
                let outcome = wait(&connection, replicas.load(Ordering::Acquire), timeout).await;
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

/// How many replicas the primary (or, in a cluster, the primary with the most) reports in
/// `INFO replication`: the `connected_slaves:` line of each node's section.
pub(super) fn connected_replicas(info: &redis::Value) -> u32 {
    let mut most = 0;
    let mut visit = |text: &str| {
        for line in text.lines() {
            if let Some(count) = line.trim().strip_prefix("connected_slaves:") {
                most = most.max(count.parse().unwrap_or(0));
            }
        }
    };
    walk_text(info, &mut visit);
    most
}

/// Every text inside `value`: a single node answers one string, a cluster a map of them.
fn walk_text(value: &redis::Value, visit: &mut impl FnMut(&str)) {
    use redis::Value;
    match value {
        Value::BulkString(bytes) => visit(&String::from_utf8_lossy(bytes)),
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => visit(text),
        Value::Array(items) | Value::Set(items) => {
            items.iter().for_each(|item| walk_text(item, visit))
        }
        Value::Map(pairs) => pairs.iter().for_each(|(key, item)| {
            walk_text(key, visit);
            walk_text(item, visit);
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::*;

    #[test]
    fn replicas_are_read_from_one_node_or_a_cluster() {
        let primary = |n: u32| {
            Value::BulkString(
                format!("# Replication\r\nrole:master\r\nconnected_slaves:{n}\r\nmaster_repl_offset:1\r\n")
                    .into_bytes(),
            )
        };
        assert_eq!(connected_replicas(&primary(0)), 0);
        assert_eq!(connected_replicas(&primary(2)), 2);
        let cluster = Value::Map(vec![
            (Value::SimpleString("10.0.0.1:7000".into()), primary(0)),
            (Value::SimpleString("10.0.0.2:7001".into()), primary(1)),
        ]);
        assert_eq!(connected_replicas(&cluster), 1);
        assert_eq!(connected_replicas(&Value::Nil), 0);
    }
}
