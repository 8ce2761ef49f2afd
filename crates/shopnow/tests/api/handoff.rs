//! An instance cut off from Redis while another reaches it (a partition that silently drops its
//! packets): what it writes is handed to the other instance's relay and published before the
//! write is acknowledged, so no instance serves an older copy once the client has its answer.
//! Redis away from every instance (nobody can publish): what was acknowledged meanwhile is
//! never served from the Redis that comes back, which still holds the copies from before.

use std::{sync::Arc, time::Duration};

use futures::FutureExt;
use reqwest::StatusCode;
use shopnow::{Config, Hooks, PublishSite};
use testkit::TcpProxy;
use tokio::sync::watch;

use crate::helpers::{ok, TestApp, SHARED_REDIS};

#[tokio::test]
async fn a_write_acknowledged_by_an_instance_cut_off_from_redis_is_served_everywhere() {
    let reaching = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let link = TcpProxy::start("127.0.0.1:6379".parse().unwrap());
    let cut_off = reaching
        .sibling()
        .with_config(|c| c.redis.urls = vec![format!("redis://{}", link.address())])
        .spawn()
        .await;
    let id = reaching.create_product("CUT-OFF-1", 100).await.id;
    for app in [&reaching, &cut_off] {
        assert_eq!(app.product(id).await.version, 1, "cached at version 1");
    }

    // Every byte between the instance and Redis now waits in the proxy, both ways: its calls
    // time out, its connection stays open.
    link.hold();
    for expected in 2..=4 {
        assert_eq!(cut_off.adjust(id, -1).await.version, expected);
        let response = reaching.get(&format!("/v1/products/{id}")).await;
        // From Redis; or, when its last look for handed-off changes caught this one in the
        // milliseconds before it was published, filled from Postgres (`trust`).
        let source = response.headers()["x-cache"].to_str().unwrap().to_string();
        assert!(
            source == "hit" || source == "miss",
            "the other instance reaches Redis, and answered {source}"
        );
        let served: shopnow::Product = response.json().await.unwrap();
        assert_eq!(
            served.version, expected,
            "once acknowledged, the write is what Redis serves"
        );
        let response = cut_off.get(&format!("/v1/products/{id}")).await;
        assert_eq!(response.headers()["x-cache"], "bypass");
        let served: shopnow::Product = response.json().await.unwrap();
        assert_eq!(served.version, expected);
    }
    assert_eq!(reaching.outbox_rows().await, 0, "the other relay took them");
    link.forward();
}

/// Holds every publish of the outbox relay until `open` says true: what Redis holds after an
/// outage then stays what it was, for as long as a test looks.
fn relay_held_until(open: watch::Receiver<bool>) -> Hooks {
    Hooks {
        before_publish: Some(Arc::new(move |(site, _): (PublishSite, i64)| {
            let mut open = open.clone();
            async move {
                if site == PublishSite::Relay {
                    let _ = open.wait_for(|open| *open).await;
                }
            }
            .boxed()
        })),
        ..Default::default()
    }
}

async fn stored_version(
    app: &TestApp,
    redis: &mut redis::aio::MultiplexedConnection,
    id: i64,
) -> i64 {
    let copy: Vec<u8> = redis::cmd("GET")
        .arg(app.copy_key(id))
        .query_async(redis)
        .await
        .unwrap();
    let copy = shopnow::CachedCopy::decode(copy.into()).expect("a versioned copy");
    copy.version
}

/// A one-replica deployment, or every instance, cut off from Redis: the writer cannot publish
/// and nobody can take its hand-off. It answers once no instance trusts the copy from before
/// (`handoff`, `trust`); when Redis answers again it still holds that copy, and the relays
/// (held here) have not replaced it yet. Every read after the acknowledgement shows the write.
async fn redis_away_from_every_instance(near_cache: bool) {
    let (open, relay) = watch::channel(false);
    let links = [0, 1].map(|_| TcpProxy::start("127.0.0.1:6379".parse().unwrap()));
    let through = |link: &TcpProxy| {
        let url = format!("redis://{}", link.address());
        move |c: &mut Config| {
            c.redis.urls = vec![url];
            c.cache.near.enabled = near_cache;
        }
    };
    let writer = TestApp::builder()
        .versioned(SHARED_REDIS)
        .with_config(through(&links[0]))
        .hooks(relay_held_until(relay.clone()))
        .spawn()
        .await;
    let reader = writer
        .sibling()
        .with_config(through(&links[1]))
        .hooks(relay_held_until(relay))
        .spawn()
        .await;
    let id = writer.create_product("AWAY-1", 100).await.id;
    for app in [&writer, &reader] {
        assert_eq!(app.product(id).await.version, 1, "cached at version 1");
    }
    let mut redis = redis::Client::open(SHARED_REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert_eq!(stored_version(&writer, &mut redis, id).await, 1);

    for link in &links {
        link.reject();
    }
    assert_eq!(
        writer.adjust(id, -1).await.version,
        2,
        "acknowledged all the same"
    );
    for link in &links {
        link.forward();
    }
    assert_eq!(
        stored_version(&writer, &mut redis, id).await,
        1,
        "Redis came back with the copy from before the write"
    );

    // The reader wrote nothing and was told nothing but what its looks for handed-off changes
    // found. Until it reaches Redis again its reads go to Postgres; then Redis answers the old
    // copy, which it must not serve.
    let mut sources = Vec::new();
    for _ in 0..200 {
        let response = reader.get(&format!("/v1/products/{id}")).await;
        let source = response.headers()["x-cache"].to_str().unwrap().to_string();
        let product: shopnow::Product = ok(response, StatusCode::OK).await;
        assert_eq!(
            product.version, 2,
            "read {source} after the write was acknowledged"
        );
        if source != "bypass" {
            sources.push(source);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        sources,
        ["miss"],
        "Redis answered again, and its copy was not trusted"
    );
    assert_eq!(writer.product(id).await.version, 2);

    open.send_replace(true);
    let trusted_again = crate::helpers::eventually(Duration::from_secs(10), || async {
        let response = reader.get(&format!("/v1/products/{id}")).await;
        let source = response.headers()["x-cache"].to_str().unwrap().to_string();
        let product: shopnow::Product = ok(response, StatusCode::OK).await;
        assert_eq!(product.version, 2);
        source == "hit" || source == "near"
    })
    .await;
    assert!(
        trusted_again.is_some(),
        "once the relays published the change, copies are served again"
    );
    assert_eq!(writer.outbox_rows().await, 0);
}

#[tokio::test]
async fn a_write_acknowledged_while_redis_was_away_from_every_instance_is_never_served_older() {
    redis_away_from_every_instance(false).await;
}

#[tokio::test]
async fn with_the_near_cache_too_a_write_acknowledged_while_redis_was_away_is_never_served_older() {
    redis_away_from_every_instance(true).await;
}
