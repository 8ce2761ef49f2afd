//! The near cache (`SHOPNOW_NEAR_CACHE=on`): a product served from an instance's memory is never
//! older than the last acknowledged write, whatever happens to the instance that holds it (a
//! pause, a lost subscription, Redis losing its data or its connection), and memory stays
//! within its bounds whatever the catalog.

use std::{process::Command, time::Duration};

use shopnow::Config;
use testkit::{RedisServer, ShopnowProcess, TcpProxy};

use crate::helpers::{eventually, start_process, TestApp, SHARED_REDIS};

fn near_on(config: &mut Config) {
    config.cache.near.enabled = true;
}

/// An instance with the near cache, on a database of its own, on the Redis at `redis_url`.
async fn near_app(redis_url: &str) -> TestApp {
    TestApp::builder()
        .versioned(redis_url)
        .with_config(near_on)
        .spawn()
        .await
}

/// Where a read of `id` through `base` came from (`X-Cache`), and the version it answered.
async fn read(client: &reqwest::Client, base: &str, id: i64) -> (String, i64) {
    let response = client
        .get(format!("{base}/v1/products/{id}"))
        .send()
        .await
        .unwrap();
    let source = response.headers()["x-cache"].to_str().unwrap().to_string();
    let product: shopnow::Product = response.json().await.unwrap();
    (source, product.version)
}

/// Reads `id` through `base` until it is served from memory; panics after 10 s.
async fn until_held(client: &reqwest::Client, base: &str, id: i64) {
    let held = eventually(Duration::from_secs(10), || async {
        read(client, base, id).await.0 == "near"
    })
    .await;
    assert!(
        held.is_some(),
        "{base} never served product {id} from memory"
    );
}

fn signal(process: &ShopnowProcess, name: &str) {
    let pid = process.pid().expect("running").to_string();
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[tokio::test]
async fn a_write_through_one_instance_is_never_served_older_from_anothers_memory() {
    let writer = near_app(SHARED_REDIS).await;
    let holder = writer.sibling().with_config(near_on).spawn().await;
    let id = writer.create_product("NEAR-1", 1_000).await.id;
    for expected in 2..=11 {
        until_held(&holder.client, &holder.address, id).await;
        assert_eq!(writer.adjust(id, -1).await.version, expected);
        let (_, served) = read(&holder.client, &holder.address, id).await;
        assert_eq!(served, expected, "the copy in memory was dropped first");
    }
    // And the other way round: the writer's own copy.
    until_held(&writer.client, &writer.address, id).await;
    assert_eq!(holder.adjust(id, -1).await.version, 12);
    assert_eq!(read(&writer.client, &writer.address, id).await.1, 12);
}

#[tokio::test]
async fn a_holder_paused_longer_than_its_lease_wakes_without_the_copies_it_missed() {
    let writer = near_app(SHARED_REDIS).await;
    let holder = start_process(&writer.config, &[("SHOPNOW_NEAR_CACHE", "on")]);
    let id = writer.create_product("NEAR-PAUSE", 1_000).await.id;
    until_held(&writer.client, &holder.url(), id).await;

    signal(&holder, "STOP");
    // The writes wait for the paused holder's lease to end (500 ms), not for the holder.
    for expected in 2..=4 {
        assert_eq!(writer.adjust(id, -1).await.version, expected);
    }
    signal(&holder, "CONT");
    let (_, served) = read(&writer.client, &holder.url(), id).await;
    assert_eq!(served, 4, "woke holding version 1, served the newest");
    until_held(&writer.client, &holder.url(), id).await;
    assert_eq!(read(&writer.client, &holder.url(), id).await.1, 4);
}

/// Redis of the test's own: these tests kill subscriptions and flush.
async fn pair_on(redis: &RedisServer) -> (TestApp, TestApp) {
    let writer = near_app(&redis.url()).await;
    let holder = writer.sibling().with_config(near_on).spawn().await;
    (writer, holder)
}

#[tokio::test]
async fn a_killed_subscription_loses_no_invalidation() {
    let redis = RedisServer::start();
    let (writer, holder) = pair_on(&redis).await;
    let id = writer.create_product("NEAR-SUBSCRIPTION", 1_000).await.id;
    until_held(&holder.client, &holder.address, id).await;

    let mut connection = redis.connection().await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(killed, 2, "both instances' subscriptions");
    // Written while neither instance can hear the other.
    assert_eq!(writer.adjust(id, -1).await.version, 2);
    assert_eq!(read(&holder.client, &holder.address, id).await.1, 2);
    // Subscribed again, it serves from memory again.
    until_held(&holder.client, &holder.address, id).await;
    assert_eq!(read(&holder.client, &holder.address, id).await.1, 2);
}

#[tokio::test]
async fn a_flush_while_copies_are_held_loses_no_lease() {
    let redis = RedisServer::start();
    let (writer, holder) = pair_on(&redis).await;
    let id = writer.create_product("NEAR-FLUSH", 1_000).await.id;
    until_held(&holder.client, &holder.address, id).await;

    let mut connection = redis.connection().await;
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut connection)
        .await
        .unwrap();
    // The registry of leases went with everything else; the write waits them out.
    assert_eq!(writer.adjust(id, -1).await.version, 2);
    assert_eq!(read(&holder.client, &holder.address, id).await.1, 2);
    until_held(&holder.client, &holder.address, id).await;
    assert_eq!(read(&holder.client, &holder.address, id).await.1, 2);
}

#[tokio::test]
async fn a_holder_cut_off_from_redis_serves_nothing_from_memory() {
    let writer = near_app(SHARED_REDIS).await;
    let link = TcpProxy::start("127.0.0.1:6379".parse().unwrap());
    let holder = writer
        .sibling()
        .with_config(|c| {
            near_on(c);
            c.redis.urls = vec![format!("redis://{}", link.address())];
        })
        .spawn()
        .await;
    let id = writer.create_product("NEAR-CUT-OFF", 1_000).await.id;
    until_held(&holder.client, &holder.address, id).await;

    link.hold();
    // Its lease cannot be renewed: within a lease, it reads Postgres.
    let bypassing = eventually(Duration::from_secs(5), || async {
        read(&holder.client, &holder.address, id).await.0 == "bypass"
    })
    .await;
    assert!(bypassing.is_some(), "it stopped serving from memory");
    assert_eq!(writer.adjust(id, -1).await.version, 2);
    assert_eq!(
        read(&holder.client, &holder.address, id).await,
        ("bypass".into(), 2)
    );
    link.forward();
    until_held(&holder.client, &holder.address, id).await;
    assert_eq!(read(&holder.client, &holder.address, id).await.1, 2);
}

#[tokio::test]
async fn memory_stays_within_its_bounds_whatever_the_catalog() {
    let app = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    app.seed(300).await;
    let bounded = start_process(
        &app.config,
        &[
            ("SHOPNOW_NEAR_CACHE", "on"),
            ("SHOPNOW_NEAR_CACHE_ENTRIES", "50"),
            ("SHOPNOW_NEAR_CACHE_BYTES", "16384"),
        ],
    );
    let metric = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    until_held(&app.client, &bounded.url(), 1).await;
    for _ in 0..3 {
        for id in 1..=300 {
            read(&app.client, &bounded.url(), id).await;
        }
        let text = app
            .client
            .get(format!("{}/metrics", bounded.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let (entries, bytes) = (
            metric(&text, "near_cache_entries"),
            metric(&text, "near_cache_bytes"),
        );
        assert!((1.0..=50.0).contains(&entries), "{entries} entries");
        assert!(bytes <= 16_384.0, "{bytes} bytes");
    }
}

#[tokio::test]
async fn the_near_cache_keeps_its_promise_on_a_redis_cluster() {
    let cluster = testkit::RedisCluster::start().await;
    let on_cluster = |c: &mut Config| {
        near_on(c);
        c.redis.urls = cluster.urls();
        c.redis.cluster = true;
    };
    let writer = TestApp::builder()
        .versioned("redis://unused")
        .with_config(on_cluster)
        .spawn()
        .await;
    let holder = writer.sibling().with_config(on_cluster).spawn().await;
    // Enough products that their hash tags land on every master; the registry is on one.
    for n in 0..6 {
        let id = writer
            .create_product(&format!("NEAR-CLUSTER-{n}"), 100)
            .await
            .id;
        until_held(&holder.client, &holder.address, id).await;
        assert_eq!(writer.adjust(id, -1).await.version, 2);
        assert_eq!(read(&holder.client, &holder.address, id).await.1, 2);
    }
}
