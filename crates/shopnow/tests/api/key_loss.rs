//! The rule every path that writes a copy keeps: once version n of a product was acknowledged,
//! the stored copy is either missing or at least n, whatever is delayed and whatever Redis
//! loses in the meantime. Each test holds one path between its Postgres read and its Redis
//! write, acknowledges a newer version elsewhere, makes Redis lose the key, then lets the held
//! path go on.

use std::{sync::Arc, time::Duration};

use futures::FutureExt;
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::json;
use shopnow::{Hooks, Product, PublishSite, WriteFaults};
use testkit::RedisServer;
use tokio::sync::{oneshot, Mutex};

use crate::helpers::{eventually, ok, TestApp};

/// How Redis loses a product's copy.
#[derive(Clone, Copy, Debug)]
enum KeyLoss {
    FlushAll,
    Del,
    /// `maxmemory` below what is used, so Redis evicts every key it can.
    Eviction,
}

impl KeyLoss {
    const ALL: [KeyLoss; 3] = [Self::FlushAll, Self::Del, Self::Eviction];

    async fn apply(self, redis: &RedisServer, key: &str) {
        let mut connection = redis.connection().await;
        match self {
            Self::FlushAll => {
                let _: () = redis::cmd("FLUSHALL")
                    .query_async(&mut connection)
                    .await
                    .unwrap();
            }
            Self::Del => {
                let _: () = connection.del(key).await.unwrap();
            }
            Self::Eviction => {
                for (name, value) in [("maxmemory-policy", "allkeys-random"), ("maxmemory", "1")] {
                    let _: () = redis::cmd("CONFIG")
                        .arg("SET")
                        .arg(name)
                        .arg(value)
                        .query_async(&mut connection)
                        .await
                        .unwrap();
                }
                // Any write makes Redis evict until it fits (it never will: the write is refused).
                let refused: redis::RedisResult<()> = connection.set("evict-now", 1).await;
                assert!(refused.is_err(), "the write past maxmemory is refused");
                let _: () = redis::cmd("CONFIG")
                    .arg("SET")
                    .arg("maxmemory")
                    .arg("0")
                    .query_async(&mut connection)
                    .await
                    .unwrap();
            }
        }
        let exists: bool = connection.exists(key).await.unwrap();
        assert!(!exists, "{self:?} lost the copy");
    }
}

/// Holds the first publish of `site` after the test arms it, until the test releases it.
struct HeldPublish {
    armed: Arc<std::sync::atomic::AtomicBool>,
    reached: oneshot::Receiver<()>,
    release: oneshot::Sender<()>,
}

fn hold_first_publish(site: PublishSite) -> (Hooks, HeldPublish) {
    let (reached_tx, reached_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = Arc::new(Mutex::new(Some((reached_tx, release_rx))));
    let hooks = Hooks {
        before_publish: Some(Arc::new({
            let armed = armed.clone();
            move |(at, _id)| {
                let gate = gate.clone();
                let armed = armed.load(std::sync::atomic::Ordering::SeqCst);
                async move {
                    if at != site || !armed {
                        return;
                    }
                    let held = gate.lock().await.take();
                    if let Some((reached, release)) = held {
                        let _ = reached.send(());
                        let _ = release.await;
                    }
                }
                .boxed()
            }
        })),
        ..Default::default()
    };
    (
        hooks,
        HeldPublish {
            armed,
            reached: reached_rx,
            release: release_tx,
        },
    )
}

impl HeldPublish {
    /// From now on, the first publish of the site is held.
    fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    async fn wait_until_reached(&mut self) {
        tokio::time::timeout(Duration::from_secs(10), &mut self.reached)
            .await
            .expect("the held path reached its publish within 10 s")
            .unwrap();
    }
}

/// Two `versioned` instances on one database and one Redis of the test's own; the first
/// carries `hooks` and `faults`.
async fn held_and_free(
    redis: &RedisServer,
    hooks: Hooks,
    faults: WriteFaults,
    sampler_rate: u32,
) -> (TestApp, TestApp) {
    let held = TestApp::builder()
        .versioned(&redis.url())
        .hooks(hooks.clone())
        .with_config(|c| {
            c.faults = faults;
            c.sampler_rate = sampler_rate;
        })
        .spawn()
        .await;
    // Both carry the hooks: either instance's relay may take a row.
    let free = held
        .sibling()
        .hooks(hooks)
        .with_config(|c| c.sampler_rate = 0)
        .spawn()
        .await;
    (held, free)
}

/// Reads product `id` on both instances, twice each: every read must be at `version`.
async fn assert_every_read_at(apps: [&TestApp; 2], id: i64, version: i64, loss: KeyLoss) {
    for app in apps {
        for _ in 0..2 {
            assert_eq!(
                app.product(id).await.version,
                version,
                "after {loss:?}, a read served a version older than an acknowledged one"
            );
        }
    }
}

#[tokio::test]
async fn a_write_through_publish_delayed_past_a_newer_write_and_a_key_loss_stores_nothing_older() {
    for loss in KeyLoss::ALL {
        let redis = RedisServer::start();
        let (hooks, mut held) = hold_first_publish(PublishSite::WriteThrough);
        let (slow, fast) = held_and_free(&redis, hooks, WriteFaults::default(), 0).await;
        let id = fast.insert_cold_product("DELAYED-1", 100).await;
        assert_eq!(fast.product(id).await.version, 1, "cached at version 1");
        held.arm();

        // The slow writer commits version 2 and stalls before its publish.
        let slow_write = tokio::spawn({
            let request = slow
                .admin(
                    reqwest::Method::POST,
                    &format!("/v1/products/{id}/stock/adjustments"),
                )
                .json(&json!({"delta": -1}));
            async move { ok::<Product>(request.send().await.unwrap(), StatusCode::OK).await }
        });
        held.wait_until_reached().await;
        let newer = fast.adjust(id, -1).await;
        assert_eq!(newer.version, 3, "version 3 is acknowledged");
        loss.apply(&redis, &slow.copy_key(id)).await;

        held.release.send(()).unwrap();
        assert_eq!(slow_write.await.unwrap().version, 2);
        assert_every_read_at([&slow, &fast], id, 3, loss).await;
    }
}

#[tokio::test]
async fn a_relay_publish_delayed_past_a_newer_write_and_a_key_loss_stores_nothing_older() {
    for loss in KeyLoss::ALL {
        let redis = RedisServer::start();
        let (hooks, mut held) = hold_first_publish(PublishSite::Relay);
        // The first instance loses every write-through publish, so its writes wait for the relay.
        let skip_every_publish = WriteFaults {
            skip_publish: 1.0,
            ..Default::default()
        };
        let (lossy, fast) = held_and_free(&redis, hooks, skip_every_publish, 0).await;
        let id = fast.insert_cold_product("RELAYED-1", 100).await;
        // The insert is a change made outside shopnow: the relay publishes it at once.
        let relayed = eventually(Duration::from_secs(5), || async {
            fast.outbox_rows().await == 0
        })
        .await;
        assert!(relayed.is_some(), "the insert was relayed");
        assert_eq!(fast.product(id).await.version, 1, "cached at version 1");
        held.arm();

        // Version 2's publish is lost; the first relay to claim it re-reads version 2 and is held.
        assert_eq!(lossy.adjust(id, -1).await.version, 2);
        held.wait_until_reached().await;
        let newer = fast.adjust(id, -1).await;
        assert_eq!(newer.version, 3, "version 3 is acknowledged");
        loss.apply(&redis, &lossy.copy_key(id)).await;

        held.release.send(()).unwrap();
        // The relay deletes the row once its publish is done; then read.
        let relayed = eventually(Duration::from_secs(5), || async {
            fast.outbox_rows().await == 0
        })
        .await;
        assert!(relayed.is_some(), "the relay finished its pass");
        assert_every_read_at([&lossy, &fast], id, 3, loss).await;
    }
}

#[tokio::test]
async fn a_sampler_repair_delayed_past_a_newer_write_and_a_key_loss_stores_nothing_older() {
    for loss in KeyLoss::ALL {
        let redis = RedisServer::start();
        let (hooks, mut held) = hold_first_publish(PublishSite::Repair);
        let (sampled, fast) = held_and_free(&redis, hooks, WriteFaults::default(), 50).await;
        let id = fast.insert_cold_product("REPAIRED-1", 100).await;
        assert_eq!(fast.adjust(id, -1).await.version, 2);
        let mut product = fast.product(id).await;
        assert_eq!(product.version, 2);

        // A wrong copy at version 2: the sampler finds it and is held.
        held.arm();
        product.stock = 12_345;
        let key = sampled.copy_key(id);
        let _: () = redis
            .connection()
            .await
            .set(&key, format!("2\n{}", json!(product)))
            .await
            .unwrap();
        held.wait_until_reached().await;
        let newer = fast.adjust(id, -1).await;
        assert_eq!(newer.version, 3, "version 3 is acknowledged");
        loss.apply(&redis, &key).await;

        held.release.send(()).unwrap();
        // The sampler counts a repair once it is done; then read.
        let stats = sampled.catalog.cache_stats();
        let repaired = eventually(Duration::from_secs(5), || async {
            stats
                .consistency_repairs
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        })
        .await;
        assert!(repaired.is_some(), "the sampler repaired the wrong copy");
        assert_every_read_at([&sampled, &fast], id, 3, loss).await;
    }
}
