//! No lost invalidation: the outbox, its relay, and the consistency sampler.

use std::{sync::atomic::Ordering, time::Duration};

use futures::StreamExt;
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::json;
use shopnow::{ProductKeys, WriteFaults};
use testkit::RedisServer;

use crate::{
    cache::stored_version,
    helpers::{eventually, start_process, TestApp, ADMIN_TOKEN, SHARED_REDIS},
};

/// An instance that loses every write-through publish, so its writes wait for the relay.
fn skipping_every_publish(config: &mut shopnow::Config) {
    config.faults = WriteFaults {
        skip_publish: 1.0,
        ..Default::default()
    };
}

/// A product's version in Postgres and the version of its copy in Redis, if any.
struct CopyVersion {
    id: i64,
    postgres: i64,
    copy: Option<i64>,
}

/// Every product's version in Postgres and in Redis under `prefix`.
async fn copies(app: &TestApp, redis_url: &str, prefix: &str) -> Vec<CopyVersion> {
    let versions: Vec<(i64, i64)> = sqlx::query_as("SELECT id, version FROM products ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let mut redis = redis::Client::open(redis_url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .ok();
    let mut copies = Vec::new();
    for (id, postgres) in versions {
        let copy: Option<Vec<u8>> = match &mut redis {
            Some(redis) => redis
                .get(ProductKeys::new(prefix, id).current())
                .await
                .unwrap_or(None),
            None => None,
        };
        copies.push(CopyVersion {
            id,
            postgres,
            copy: stored_version(copy),
        });
    }
    copies
}

/// Product ids whose copy is not at their Postgres version (missing counts as not at it).
async fn stale_copies(app: &TestApp, redis_url: &str, prefix: &str) -> Vec<i64> {
    copies(app, redis_url, prefix)
        .await
        .into_iter()
        .filter(|c| c.copy != Some(c.postgres))
        .map(|c| c.id)
        .collect()
}

#[tokio::test]
async fn a_skipped_publish_is_repaired_by_the_relay_within_two_seconds() {
    let writer = TestApp::builder()
        .versioned(SHARED_REDIS)
        .with_config(skipping_every_publish)
        .spawn()
        .await;
    let reader = writer.sibling().spawn().await;

    let id = writer.insert_cold_product("SKIP-1", 10).await;
    assert_eq!(reader.product(id).await.version, 1);
    // The insert, made outside the API, has an outbox row of its own: let a relay take it, so
    // that the row counted below is the skipped publish's.
    let relayed = eventually(Duration::from_secs(5), || async {
        reader.outbox_rows().await == 0
    })
    .await;
    assert!(relayed.is_some(), "the insert's own outbox row was relayed");
    let written = writer.adjust(id, -4).await;
    assert_eq!(written.version, 2);
    assert_eq!(
        reader.outbox_rows().await,
        1,
        "the lost publish is recorded"
    );

    let repaired = eventually(Duration::from_secs(2), || async {
        reader.product(id).await.version == 2
    })
    .await;
    assert!(
        repaired.is_some(),
        "another instance sees version 2 within 2 s"
    );
    let emptied = eventually(Duration::from_secs(1), || async {
        reader.outbox_rows().await == 0
    })
    .await;
    assert!(emptied.is_some(), "the outbox is empty");
    assert_eq!(reader.product(id).await.stock, 6);
}

/// How Redis fails while writes go on.
#[derive(Clone, Copy, Debug)]
enum Outage {
    /// The process is stopped, then started again empty (it keeps nothing on disk).
    Stopped,
    /// Redis keeps its data and answers reads but refuses every write (`min-replicas-to-write`
    /// with no replica): publishes fail while the old copies stay readable.
    RefusingWrites,
}

/// 500 writes while Redis is out for 5 s; returns when Redis is back.
async fn write_through_an_outage(outage: Outage) {
    let mut redis = RedisServer::start();
    let app = TestApp::builder().versioned(&redis.url()).spawn().await;
    let prefix = app.prefix().to_string();
    app.seed(50).await;
    for id in 1..=50 {
        app.product(id).await; // cache every product at version 1
    }

    match outage {
        Outage::Stopped => redis.stop(),
        Outage::RefusingWrites => redis.config_set("min-replicas-to-write", "1").await,
    }
    let down_since = std::time::Instant::now();
    let catalog = &app.catalog;
    futures::stream::iter((0..500).map(|n| 1 + n % 50))
        .for_each_concurrent(8, |id| async move {
            catalog
                .adjust_stock(id, 1)
                .await
                .expect("writes go on while Redis is out");
        })
        .await;
    assert!(app.outbox_rows().await >= 500);
    // The fault lasts 5 s, whatever the writes took.
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(down_since.elapsed())).await;
    match outage {
        Outage::Stopped => redis.resume(),
        Outage::RefusingWrites => redis.config_set("min-replicas-to-write", "0").await,
    }

    let url = redis.url();
    let repaired = eventually(Duration::from_secs(2), || async {
        let copies = copies(&app, &url, &prefix).await;
        app.outbox_rows().await == 0
            && match outage {
                // Every copy Redis kept was replaced by its current version.
                Outage::RefusingWrites => copies.iter().all(|c| c.copy == Some(c.postgres)),
                // Redis came back empty: nothing may be older than Postgres.
                Outage::Stopped => copies
                    .iter()
                    .all(|c| c.copy.is_none_or(|v| v >= c.postgres)),
            }
    })
    .await;
    assert!(
        repaired.is_some(),
        "{outage:?}: every lost publish is repaired within 2 s of Redis accepting writes"
    );
    for id in 1..=50 {
        let read = app.product(id).await;
        assert_eq!(read.version, 11, "{outage:?}: product {id}");
    }
}

#[tokio::test]
async fn writes_while_redis_is_down_are_published_when_it_returns() {
    write_through_an_outage(Outage::Stopped).await;
}

#[tokio::test]
async fn writes_while_redis_refuses_them_are_published_when_it_accepts_again() {
    write_through_an_outage(Outage::RefusingWrites).await;
}

#[tokio::test]
async fn three_relays_share_the_outbox_without_leftovers() {
    let redis = RedisServer::start();
    let writer = TestApp::builder()
        .versioned(&redis.url())
        .with_config(skipping_every_publish)
        .spawn()
        .await;
    let _second = writer.sibling().spawn().await;
    let _third = writer.sibling().spawn().await;
    let prefix = writer.prefix().to_string();
    writer.seed(30).await;
    for id in 1..=30 {
        writer.product(id).await; // cache every product at version 1
    }

    // Redis refuses writes during the burst, so that no relay can take a row before all 300
    // changes are in the outbox.
    redis.config_set("min-replicas-to-write", "1").await;
    let catalog = &writer.catalog;
    futures::stream::iter((0..300).map(|n| 1 + n % 30))
        .for_each_concurrent(8, |id| async move {
            catalog.adjust_stock(id, 1).await.unwrap();
        })
        .await;
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM cache_outbox WHERE written_by_instance AND version > 1",
    )
    .fetch_one(&writer.pool)
    .await
    .unwrap();
    let all: Vec<(bool, i64, i64)> = sqlx::query_as(
        "SELECT written_by_instance, count(*), max(version) FROM cache_outbox GROUP BY 1",
    )
    .fetch_all(&writer.pool)
    .await
    .unwrap();
    assert_eq!(pending, 300, "every change is in the outbox: {all:?}");

    redis.config_set("min-replicas-to-write", "0").await;
    let drained = eventually(Duration::from_secs(5), || async {
        writer.outbox_rows().await == 0
    })
    .await;
    assert!(drained.is_some(), "the relays drained the outbox");
    assert_eq!(
        stale_copies(&writer, &redis.url(), &prefix).await,
        Vec::<i64>::new()
    );
}

#[tokio::test]
async fn an_instance_killed_during_a_write_burst_leaves_nothing_stale_beyond_the_bound() {
    let survivor = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let prefix = survivor.prefix().to_string();
    survivor.seed(20).await;
    for id in 1..=20 {
        survivor.product(id).await;
    }

    // The doomed instance loses a third of its publishes, as a process dying between commit
    // and publish would, then is SIGKILLed in the middle of its burst.
    let mut doomed = start_process(&survivor.config, &[("SHOPNOW_FAULTS", "skip-publish=0.3")]);
    let client = reqwest::Client::new();
    let address = doomed.url();
    let burst = futures::stream::iter(0..400)
        .map(|n| {
            let client = client.clone();
            let url = format!("{address}/v1/products/{}/stock/adjustments", 1 + n % 20);
            async move {
                client
                    .post(url)
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({"delta": 1}))
                    .send()
                    .await
                    .map(|r| r.status())
            }
        })
        .buffer_unordered(16);
    tokio::pin!(burst);
    let mut answered = 0;
    while let Some(result) = burst.next().await {
        if let Ok(status) = result {
            assert_eq!(status, StatusCode::OK);
            answered += 1;
        }
        if answered == 150 {
            doomed.kill();
        }
    }
    assert!(answered >= 150, "the burst ran until the kill");
    let killed_at = std::time::Instant::now();
    assert!(survivor.outbox_rows().await > 0, "some publishes were lost");

    let repaired = eventually(Duration::from_secs(3), || async {
        stale_copies(&survivor, SHARED_REDIS, &prefix)
            .await
            .is_empty()
    })
    .await;
    let bound = shopnow::REPAIR_BOUND + shopnow::RELAY_GRACE;
    assert!(repaired.is_some(), "every product is repaired");
    assert!(
        killed_at.elapsed() <= bound + Duration::from_secs(2),
        "repaired within the bound"
    );
    let versions: Vec<(i64, i64)> = sqlx::query_as("SELECT id, version FROM products ORDER BY id")
        .fetch_all(&survivor.pool)
        .await
        .unwrap();
    for (id, version) in versions {
        assert_eq!(survivor.product(id).await.version, version, "product {id}");
    }
}

#[tokio::test]
async fn the_sampler_finds_nothing_in_a_clean_run_and_reports_a_planted_stale_payload() {
    let app = TestApp::builder()
        .versioned(SHARED_REDIS)
        .with_config(|c| c.sampler_rate = 50)
        .spawn()
        .await;
    let prefix = app.prefix().to_string();
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(app.create_product(&format!("SAMPLE-{n}"), 100).await.id);
    }
    let stats = app.catalog.cache_stats();

    // A clean run: writes and reads while the sampler checks.
    let checked = eventually(Duration::from_secs(10), || async {
        for &id in &ids {
            app.catalog.adjust_stock(id, 1).await.unwrap();
            app.product(id).await;
        }
        stats.consistency_checks.load(Ordering::Relaxed) >= 100
    })
    .await;
    assert!(checked.is_some(), "the sampler ran");
    assert_eq!(stats.consistency_violations.load(Ordering::Relaxed), 0);

    // Plant a payload that contradicts Postgres under the current version.
    let id = ids[0];
    let mut product = app.product(id).await;
    let version = product.version;
    product.stock = 12345;
    let mut redis = redis::Client::open(SHARED_REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis
        .set(
            ProductKeys::new(&prefix, id).current(),
            format!("{version}\n{}", json!(product)),
        )
        .await
        .unwrap();

    let found = eventually(Duration::from_secs(10), || async {
        stats.consistency_violations.load(Ordering::Relaxed) > 0
    })
    .await;
    assert!(found.is_some(), "the sampler reports the planted payload");
    let repaired = eventually(Duration::from_secs(2), || async {
        app.product(id).await.stock != 12345
    })
    .await;
    assert!(repaired.is_some(), "and repairs it");
}
