//! The cache strategies against a real Redis: what `versioned` guarantees, and how `ttl` and
//! `delete` lose it.

use std::{collections::HashMap, sync::atomic::Ordering, sync::Arc};

use futures::{future::join_all, FutureExt, StreamExt};
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::json;
use shopnow::{CacheStrategy, CachedCopy, Hooks, Product, PublishSite};
use testkit::{command_calls, RedisServer};
use tokio::sync::{oneshot, Mutex};

use crate::helpers::{assert_error, ok, TestApp, SHARED_REDIS};

/// The version of a stored `versioned` copy, if any.
pub(crate) fn stored_version(copy: Option<Vec<u8>>) -> Option<i64> {
    copy.and_then(|copy| CachedCopy::decode(copy.into()))
        .map(|copy| copy.version)
}

/// Two instances on one database and one Redis, sharing a key prefix.
async fn two_instances(strategy: CacheStrategy, redis_url: &str) -> (TestApp, TestApp) {
    let a = TestApp::builder()
        .strategy(strategy, redis_url)
        .spawn()
        .await;
    let b = a.sibling().spawn().await;
    (a, b)
}

/// Adjusts stock on `writer`, then reads on `reader`, `rounds` times; returns how many reads
/// showed an older version than the write just acknowledged, and how many were cache hits.
async fn stale_reads_across_instances(
    writer: &TestApp,
    reader: &TestApp,
    rounds: usize,
) -> (usize, usize) {
    let id = writer.create_product("ROUNDS-1", 1_000).await.id;
    let mut stale = 0;
    let mut hits = 0;
    for round in 0..rounds {
        let delta = if round % 2 == 0 { -1 } else { 1 };
        let written = writer.adjust(id, delta).await;
        let response = reader.get(&format!("/v1/products/{id}")).await;
        if response.headers()["x-cache"] == "hit" {
            hits += 1;
        }
        let read: Product = ok(response, StatusCode::OK).await;
        assert!(
            read.version <= written.version,
            "no version from the future"
        );
        if read.version != written.version {
            stale += 1;
        } else {
            assert_eq!(read.stock, written.stock, "one version, one stock");
        }
    }
    (stale, hits)
}

#[tokio::test]
async fn versioned_reads_on_another_instance_see_every_acknowledged_write() {
    let (a, b) = two_instances(CacheStrategy::Versioned, SHARED_REDIS).await;
    let (stale, hits) = stale_reads_across_instances(&a, &b, 1_000).await;
    assert_eq!(stale, 0);
    // Write-through: each write replaces the copy, so the next read is a hit. The one miss is the
    // first read: a publish never fills a missing copy (a stalled publisher could put back an
    // older version that way), so a new product is cached by its first read.
    assert_eq!(hits, 999);
}

#[tokio::test]
async fn ttl_serves_stale_stock_after_a_write_on_another_instance() {
    let (a, b) = two_instances(CacheStrategy::Ttl, SHARED_REDIS).await;
    let (stale, _) = stale_reads_across_instances(&a, &b, 1_000).await;
    // The article's bug: after the first read fills the key, every read is stale until the TTL.
    assert!(stale >= 999, "ttl served {stale} stale reads of 1000");
}

/// A fill hook that holds the first fill until the test releases it.
struct HeldFill {
    reached: oneshot::Receiver<()>,
    release: oneshot::Sender<()>,
}

fn hold_first_fill() -> (Hooks, HeldFill) {
    let (reached_tx, reached_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    let gate = Arc::new(Mutex::new(Some((reached_tx, release_rx))));
    let hooks = Hooks {
        before_fill: Some(Arc::new(move |_id| {
            let gate = gate.clone();
            async move {
                if let Some((reached, release)) = gate.lock().await.take() {
                    let _ = reached.send(());
                    let _ = release.await;
                }
            }
            .boxed()
        })),
        ..Default::default()
    };
    (
        hooks,
        HeldFill {
            reached: reached_rx,
            release: release_tx,
        },
    )
}

/// Holds every publish of the outbox relay for good: a relay publishing the write again after
/// its grace period (its outbox row not swept yet on a busy machine) would repair what the
/// race broke before the test looks.
fn relay_held(hooks: Hooks) -> Hooks {
    Hooks {
        before_publish: Some(Arc::new(|(site, _): (PublishSite, i64)| {
            async move {
                if site == PublishSite::Relay {
                    std::future::pending::<()>().await;
                }
            }
            .boxed()
        })),
        ..hooks
    }
}

/// A reader misses and reads version 1 from Postgres, then is held; a writer on another
/// instance commits and publishes version 2; the reader is released and fills. Returns the
/// version the next read on the reader's instance sees.
async fn late_fill(strategy: CacheStrategy) -> i64 {
    let (hooks, held) = hold_first_fill();
    let reader = TestApp::builder()
        .strategy(strategy, SHARED_REDIS)
        .hooks(relay_held(hooks))
        .spawn()
        .await;
    let writer = reader
        .sibling()
        .hooks(relay_held(Hooks::default()))
        .spawn()
        .await;
    let id = writer.insert_cold_product("LATE-1", 10).await;

    let slow_read = tokio::spawn({
        let url = reader.url(&format!("/v1/products/{id}"));
        let client = reader.client.clone();
        async move { ok::<Product>(client.get(url).send().await.unwrap(), StatusCode::OK).await }
    });
    tokio::time::timeout(std::time::Duration::from_secs(10), held.reached)
        .await
        .expect("the reader reached its fill within 10 s")
        .unwrap();
    let written = writer.adjust(id, -1).await;
    assert_eq!(written.version, 2);
    held.release.send(()).unwrap();
    let slow = slow_read.await.unwrap();
    assert_eq!(slow.version, 1, "the held read started before the write");

    reader.product(id).await.version
}

#[tokio::test]
async fn late_fill_never_overwrites_newer_version() {
    assert_eq!(late_fill(CacheStrategy::Versioned).await, 2);
}

#[tokio::test]
async fn delete_strategy_loses_the_late_fill_race() {
    // The reader's fill put version 1 back after the writer's DEL: stale until the TTL.
    assert_eq!(late_fill(CacheStrategy::Delete).await, 1);
}

#[tokio::test]
async fn the_version_never_goes_back_after_flush_pointer_loss_or_restart() {
    let mut redis = RedisServer::start();
    let app = TestApp::builder().versioned(&redis.url()).spawn().await;
    let id = app.create_product("FAULT-1", 100).await.id;
    let key = app.copy_key(id);

    let mut expected = 1;
    for fault in [
        "flushall", "del-copy", "restart", "flushall", "restart", "del-copy",
    ] {
        expected = app.adjust(id, -1).await.version;
        assert_eq!(app.product(id).await.version, expected, "before {fault}");
        match fault {
            "flushall" => {
                let _: () = redis::cmd("FLUSHALL")
                    .query_async(&mut redis.connection().await)
                    .await
                    .unwrap();
            }
            "del-copy" => {
                let _: () = redis.connection().await.del(&key).await.unwrap();
            }
            _ => redis.restart(),
        }
        // The first reads after the fault may bypass while the client reconnects; none may
        // show an older version.
        for _ in 0..5 {
            assert_eq!(app.product(id).await.version, expected, "after {fault}");
        }
        let copy: Option<Vec<u8>> = redis.connection().await.get(&key).await.unwrap();
        assert_eq!(
            stored_version(copy),
            Some(expected),
            "the copy is refilled from Postgres after {fault}"
        );
    }
    assert_eq!(expected, 7);
}

#[tokio::test]
async fn a_warm_read_is_one_redis_command_and_no_postgres_query() {
    let redis = RedisServer::start();
    let app = TestApp::builder().versioned(&redis.url()).spawn().await;
    let id = app.create_product("WARM-1", 5).await.id;
    let path = format!("/v1/products/{id}");
    app.product(id).await; // warm: miss and fill

    let mut connection = redis.connection().await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut connection)
        .await
        .unwrap();
    let stats = app.catalog.cache_stats();
    let database_reads = stats.database_reads.load(Ordering::Relaxed);
    for _ in 0..1_000 {
        let response = app.get(&path).await;
        assert_eq!(response.headers()["x-cache"], "hit");
    }
    assert_eq!(
        stats.database_reads.load(Ordering::Relaxed),
        database_reads,
        "no Postgres query"
    );
    let calls: HashMap<String, u64> = command_calls(&mut connection).await.into_iter().collect();
    // Each read is one GET of the product's versioned copy. Nothing else reached Redis but this
    // test's own command and the instance's background watches, which no read waits for: the
    // database history shared every 500 ms (one script call), reachability and replicas every
    // 5 s (PING, INFO). Redis counts the commands a script runs too: each history share is one
    // GET of `<prefix>:history` inside its script.
    // A share whose script Redis did not have yet answers NOSCRIPT without running (Redis
    // still counts the call) and is sent again after a SCRIPT LOAD: seen once under CI's load.
    let count = |command: &str| calls.get(command).copied().unwrap_or(0);
    let history_shares = count("evalsha") + count("eval") - count("script|load");
    assert_eq!(count("get"), 1_000 + history_shares, "{calls:?}");
    let background = [
        "config|resetstat",
        "evalsha",
        "eval",
        "script|load",
        "ping",
        "info",
    ];
    for (command, count) in &calls {
        assert!(
            command == "get" || background.contains(&command.as_str()),
            "a read sent {command} ({count} times): {calls:?}"
        );
    }
}

#[tokio::test]
async fn concurrent_cold_reads_on_one_instance_share_one_postgres_read() {
    let app = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let id = app.insert_cold_product("COLD-1", 5).await;
    // The insert is a change made outside shopnow: let the relay publish it first (into no
    // copy: nothing is stored), so that no publish ends a fill's lease during the reads.
    let relayed = crate::helpers::eventually(std::time::Duration::from_secs(5), || async {
        app.outbox_rows().await == 0
    })
    .await;
    assert!(relayed.is_some());
    let stats = app.catalog.cache_stats();
    let before = stats.database_reads.load(Ordering::Relaxed);

    let path = format!("/v1/products/{id}");
    let responses = join_all((0..100).map(|_| app.get(&path))).await;
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(
        stats.database_reads.load(Ordering::Relaxed) - before,
        1,
        "one Postgres read"
    );
}

#[tokio::test]
async fn a_write_storm_leaves_bounded_keys_all_with_a_ttl() {
    let app = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let prefix = app.prefix().to_string();
    app.seed(200).await;

    // 200 products x 50 writes, with reads racing them so that fills and leases happen too.
    let catalog = &app.catalog;
    let work = (1..=200i64).flat_map(|id| (0..50).map(move |n| (id, n)));
    futures::stream::iter(work)
        .for_each_concurrent(16, |(id, n)| async move {
            catalog.adjust_stock(id, 1).await.unwrap();
            if n % 5 == 0 {
                catalog.read(id).await.unwrap();
            }
        })
        .await;
    // A fill racing 15 writers of its product is often refused (each publish ends its lease),
    // so a product may come out of the storm uncached; one more read fills it.
    for id in 1..=200 {
        catalog.read(id).await.unwrap();
    }

    let mut redis = redis::Client::open(SHARED_REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis.keys(format!("{prefix}:*")).await.unwrap();
    let mut per_product: HashMap<String, usize> = HashMap::new();
    let mut page_generations = 0;
    for key in &keys {
        let ttl: i64 = redis.ttl(key).await.unwrap();
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
        if key.contains(":{pages:") {
            // One generation per list scope the writes touched: the seed's 9 categories, `all`.
            assert!(key.ends_with(":gen"), "{key}: no page was read");
            page_generations += 1;
            continue;
        }
        let product = key.split('}').next().unwrap().to_string();
        if !key.ends_with(":lease") {
            *per_product.entry(product).or_default() += 1;
        }
    }
    assert!(
        page_generations <= 10,
        "{page_generations} page generations"
    );
    assert_eq!(per_product.len(), 200);
    for (product, count) in per_product {
        // The versioned copy is replaced in place: one key per product, no orphans.
        assert_eq!(count, 1, "{product} holds {count} keys");
    }
}

#[tokio::test]
async fn a_delete_answers_404_on_every_instance_at_once() {
    let (a, b) = two_instances(CacheStrategy::Versioned, SHARED_REDIS).await;
    let id = a.create_product("GONE-1", 5).await.id;
    let path = format!("/v1/products/{id}");
    a.product(id).await;
    b.product(id).await;

    assert_eq!(a.delete_product(id).await.status(), StatusCode::NO_CONTENT);
    for app in [&a, &b] {
        let response = app.get(&path).await;
        assert_eq!(
            response.headers()["x-cache"],
            "hit",
            "the tombstone answers"
        );
        assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
}

#[tokio::test]
async fn a_matching_etag_answers_304_from_the_cache() {
    let app = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let id = app.create_product("ETAG-C", 5).await.id;
    let url = app.url(&format!("/v1/products/{id}"));
    app.product(id).await;
    let response = app
        .client
        .get(&url)
        .header("If-None-Match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(response.headers()["x-cache"], "hit");
}

#[tokio::test]
async fn with_redis_down_the_api_serves_from_postgres_and_uses_redis_when_it_returns() {
    let mut redis = RedisServer::start();
    redis.stop();
    let app = TestApp::builder().versioned(&redis.url()).spawn().await;

    let ready: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["cache"].as_str()),
        (Some("ready"), Some("degraded"))
    );
    let id = app.create_product("DOWN-1", 5).await.id;
    app.adjust(id, -2).await;
    let response = app.get(&format!("/v1/products/{id}")).await;
    assert_eq!(response.headers()["x-cache"], "bypass");
    let body: Product = ok(response, StatusCode::OK).await;
    assert_eq!((body.stock, body.version), (3, 2));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("cache_reads_total{strategy=\"versioned\",result=\"bypass\"}"),
        "{metrics}"
    );

    redis.resume();
    // Reconnecting is the client's own event; poll it, bounded, until Redis is used again.
    let mut seen = Vec::new();
    for _ in 0..50 {
        let response = app.get(&format!("/v1/products/{id}")).await;
        let status = response.headers()["x-cache"].to_str().unwrap().to_string();
        assert_eq!(ok::<Product>(response, StatusCode::OK).await.version, 2);
        seen.push(status.clone());
        if status == "hit" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen.last().map(String::as_str), Some("hit"), "{seen:?}");
}

#[tokio::test]
async fn a_paused_redis_is_bypassed_within_the_timeout() {
    let redis = RedisServer::start();
    let app = TestApp::builder().versioned(&redis.url()).spawn().await;
    let id = app.create_product("PAUSE-1", 5).await.id;
    app.product(id).await; // the first read fills the copy
    assert_eq!(
        app.get(&format!("/v1/products/{id}")).await.headers()["x-cache"],
        "hit"
    );

    // Redis accepts the connection but answers nothing for 5 s: slower than the 200 ms timeout.
    let mut admin = redis.connection().await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(5_000)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    let response = app.get(&format!("/v1/products/{id}")).await;
    assert_eq!(response.headers()["x-cache"], "bypass");
    assert_eq!(ok::<Product>(response, StatusCode::OK).await.version, 1);
    // A write goes on too; its publish fails and is counted.
    assert_eq!(app.adjust(id, -1).await.version, 2);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("cache_publish_failures_total{strategy=\"versioned\"}"),
        "{metrics}"
    );
    // The test's server is killed on drop, pause and all.
}

#[tokio::test]
async fn writes_whose_clients_give_up_still_finish_and_leave_the_pool_healthy() {
    let app = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let id = app.create_product("GIVEUP-1", 1_000).await.id;
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(2))
        .build()
        .unwrap();
    let url = app.url(&format!("/v1/products/{id}/stock/adjustments"));
    let attempts = (0..100).map(|_| {
        impatient
            .post(&url)
            .bearer_auth(crate::helpers::ADMIN_TOKEN)
            .json(&json!({"delta": 1}))
            .send()
    });
    join_all(attempts).await; // most are dropped by the client mid-flight

    // Every write that started runs to its end, publish included: eventually the cache holds
    // the version Postgres holds, and no connection is left inside a transaction.
    let settled = crate::helpers::eventually(std::time::Duration::from_secs(5), || async {
        let (_, version) = app.stored(id).await;
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        open == 0 && app.product(id).await.version == version
    })
    .await;
    assert!(settled.is_some(), "the cut-off writes settled");

    // And the pool still serves: 100 more writes, each answered.
    for _ in 0..100 {
        app.adjust(id, 1).await;
    }
    let (stock, version) = app.stored(id).await;
    assert_eq!(
        stock - 1_000,
        version - 1,
        "every committed write took exactly its delta"
    );
    assert_eq!(app.product(id).await.version, version);
}

#[tokio::test]
async fn reads_of_a_missing_id_reach_postgres_once_and_a_create_shows_at_once() {
    let redis = RedisServer::start();
    let app = TestApp::builder().versioned(&redis.url()).spawn().await;
    let other = app.sibling().spawn().await;
    let stats = app.catalog.cache_stats();
    // The id the next product will get.
    let next = app.create_product("BEFORE-1", 1).await.id + 1;

    let before = stats.database_reads.load(Ordering::Relaxed);
    for _ in 0..100 {
        assert_error(
            app.get(&format!("/v1/products/{next}")).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    assert_eq!(
        stats.database_reads.load(Ordering::Relaxed) - before,
        1,
        "one Postgres read for a hundred reads of a missing id"
    );

    let created = other.create_product("AFTER-1", 5).await;
    assert_eq!(created.id, next);
    for app in [&app, &other] {
        let response = app.get(&format!("/v1/products/{next}")).await;
        assert_eq!(
            response.headers()["x-cache"],
            "hit",
            "the create replaced the absent copy"
        );
        assert_eq!(ok::<Product>(response, StatusCode::OK).await, created);
    }

    // Many invented ids leave no lease behind, and their copies expire.
    for id in 1_000..1_200 {
        app.get(&format!("/v1/products/{id}")).await;
    }
    let mut connection = redis.connection().await;
    let leases: Vec<String> = connection
        .keys(format!("{}:*:lease", app.prefix()))
        .await
        .unwrap();
    assert!(leases.is_empty(), "{} leases left", leases.len());
    let ttl: i64 = connection.ttl(app.copy_key(1_100)).await.unwrap();
    assert!(
        (1..=60).contains(&ttl),
        "an absent copy lives a minute at most: {ttl}"
    );
    for id in [0, -5] {
        assert_error(
            app.get(&format!("/v1/products/{id}")).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
}

#[tokio::test]
async fn a_refused_fill_costs_one_more_postgres_read_not_one_per_waiting_reader() {
    let (hooks, held) = hold_first_fill();
    let reader = TestApp::builder()
        .versioned(SHARED_REDIS)
        .hooks(hooks)
        .spawn()
        .await;
    let writer = reader.sibling().spawn().await;
    let id = writer.create_product("HERD-1", 100).await.id;
    let stats = reader.catalog.cache_stats();
    let before = stats.database_reads.load(Ordering::Relaxed);

    // Fifty readers miss at once; the first leads and is held with its row read.
    let path = reader.url(&format!("/v1/products/{id}"));
    let readers: Vec<_> = (0..50)
        .map(|_| {
            let (client, path) = (reader.client.clone(), path.clone());
            tokio::spawn(async move { client.get(path).send().await.unwrap().status() })
        })
        .collect();
    tokio::time::timeout(std::time::Duration::from_secs(10), held.reached)
        .await
        .expect("the leader reached its fill")
        .unwrap();
    // A write publishes meanwhile: it ends the lease, so the held fill will be refused.
    writer.adjust(id, -1).await;
    held.release.send(()).unwrap();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), StatusCode::OK);
    }
    let database_reads = stats.database_reads.load(Ordering::Relaxed) - before;
    assert!(
        database_reads <= 3,
        "{database_reads} Postgres reads for 50 readers of one product"
    );
    assert_eq!(reader.product(id).await.version, 2);
}

/// Holds the first call of a hook until released.
fn gate<Args: Send + 'static>(
    wanted: impl Fn(&Args) -> bool + Send + Sync + 'static,
) -> (
    shopnow::Hook<Args>,
    oneshot::Receiver<()>,
    oneshot::Sender<()>,
) {
    let (reached_tx, reached_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    let state = Arc::new(Mutex::new(Some((reached_tx, release_rx))));
    let hook: shopnow::Hook<Args> = Arc::new(move |args: Args| {
        let state = state.clone();
        let wanted = wanted(&args);
        async move {
            if !wanted {
                return;
            }
            let held = state.lock().await.take();
            if let Some((reached, release)) = held {
                let _ = reached.send(());
                let _ = release.await;
            }
        }
        .boxed()
    });
    (hook, reached_rx, release_tx)
}

#[tokio::test]
async fn a_miss_whose_fill_is_refused_answers_the_stored_copy_so_reads_never_go_back() {
    let (c_fill, c_reached, c_release) = gate::<i64>(|_| true);
    let (a_fill, a_reached, a_release) = gate::<i64>(|_| true);
    let (w_publish, w_reached, w_release) = gate::<(shopnow::PublishSite, i64)>(|(site, _)| {
        *site == shopnow::PublishSite::WriteThrough
    });
    let c = TestApp::builder()
        .versioned(SHARED_REDIS)
        .hooks(Hooks {
            before_fill: Some(c_fill),
            ..Default::default()
        })
        .spawn()
        .await;
    let a = c
        .sibling()
        .hooks(Hooks {
            before_fill: Some(a_fill),
            ..Default::default()
        })
        .spawn()
        .await;
    let w = c
        .sibling()
        .hooks(Hooks {
            before_publish: Some(w_publish),
            ..Default::default()
        })
        .spawn()
        .await;
    let id = c.insert_cold_product("REFUSED-1", 100).await;
    let relayed = crate::helpers::eventually(std::time::Duration::from_secs(5), || async {
        c.outbox_rows().await == 0
    })
    .await;
    assert!(relayed.is_some());
    let read = |app: &TestApp| {
        let request = app.client.get(app.url(&format!("/v1/products/{id}")));
        tokio::spawn(
            async move { ok::<Product>(request.send().await.unwrap(), StatusCode::OK).await },
        )
    };

    // C misses and reads version 1, then is held before its fill.
    let c_read = read(&c);
    c_reached.await.unwrap();
    // W commits version 2 and is held before its publish (a write in flight).
    let w_write = tokio::spawn({
        let request = w
            .admin(
                reqwest::Method::POST,
                &format!("/v1/products/{id}/stock/adjustments"),
            )
            .json(&json!({"delta": -1}));
        async move { request.send().await.unwrap().status() }
    });
    w_reached.await.unwrap();
    // A misses, shares C's lease, reads version 2, and is held before its fill.
    let a_read = read(&a);
    a_reached.await.unwrap();
    // C stores version 1 (its lease holds: nothing was published); A's fill is then refused.
    c_release.send(()).unwrap();
    assert_eq!(c_read.await.unwrap().version, 1);
    a_release.send(()).unwrap();
    let a_version = a_read.await.unwrap().version;
    // Version 2 is not acknowledged yet: either answer is fresh enough for A; but whatever A
    // answered, no read that starts after it may answer an older one.
    let next = c.product(id).await.version;
    assert!(
        next >= a_version,
        "A answered {a_version}, then a read answered {next}"
    );

    w_release.send(()).unwrap();
    assert_eq!(w_write.await.unwrap(), StatusCode::OK);
    assert_eq!(c.product(id).await.version, 2);
}
