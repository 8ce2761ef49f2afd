//! The versioned read path on a real 3-master Redis Cluster.

use reqwest::StatusCode;
use shopnow::Product;
use testkit::RedisCluster;

use crate::helpers::{ok, TestApp};

#[tokio::test]
async fn versioned_reads_work_the_same_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let app = TestApp::builder()
        .versioned("redis://unused")
        .with_config(|c| {
            c.redis.urls = cluster.urls();
            c.redis.cluster = true;
        })
        .spawn()
        .await;

    // Enough products that their hash tags land on every master.
    let mut ids = Vec::new();
    for n in 0..12 {
        ids.push(app.insert_cold_product(&format!("CLUSTER-{n}"), 50).await);
    }
    // The inserts are changes made outside shopnow: let the relay publish them first (into no
    // copy: nothing is stored), so that no such publish ends the lease of a fill below and
    // leaves the product uncached (a refused fill is right, but not what this test looks at).
    let relayed = crate::helpers::eventually(std::time::Duration::from_secs(5), || async {
        app.outbox_rows().await == 0
    })
    .await;
    assert!(relayed.is_some(), "the relay publishes the inserts");
    for &id in &ids {
        let path = format!("/v1/products/{id}");
        assert_eq!(app.get(&path).await.headers()["x-cache"], "miss");
        let written = app.adjust(id, -5).await;
        let response = app.get(&path).await;
        assert_eq!(response.headers()["x-cache"], "hit");
        let read: Product = ok(response, StatusCode::OK).await;
        assert_eq!((read.version, read.stock), (written.version, 45));
    }

    let gone = format!("/v1/products/{}", ids[0]);
    assert_eq!(
        app.delete_product(ids[0]).await.status(),
        StatusCode::NO_CONTENT
    );
    let response = app.get(&gone).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.headers()["x-cache"], "hit");

    // A list page: its generation and entry in one slot, its items' copies across every
    // master (the MGET split by slot), served warm, and fresh after a write.
    let page_path = "/v1/products?sort=id&limit=50";
    let first: serde_json::Value = ok(app.get(page_path).await, StatusCode::OK).await;
    assert_eq!(first["items"].as_array().unwrap().len(), ids.len() - 1);
    let warm = app.get(page_path).await;
    assert_eq!(warm.headers()["x-cache"], "hit");
    let written = app.adjust(ids[1], -1).await;
    let fresh: serde_json::Value = ok(app.get(page_path).await, StatusCode::OK).await;
    assert_eq!(fresh["items"][0]["version"], written.version);

    // Keys of every master hold product data: the hash tags spread the catalog.
    for node in &cluster.nodes {
        let keys: i64 = redis::cmd("DBSIZE")
            .query_async(&mut node.connection().await)
            .await
            .unwrap();
        assert!(keys > 0, "node {} holds no keys", node.port);
    }
}

/// A Redis Cluster with a replica per shard, as ElastiCache cluster mode runs it: a master
/// dies, its replica takes over; no read fails, nothing older than an acknowledged write is
/// served once the cluster is healthy again, and the old master comes back as a replica.
#[tokio::test]
async fn a_cluster_with_replicas_survives_the_loss_of_a_master() {
    let mut cluster = RedisCluster::start_with_replicas(1).await;
    let app = TestApp::builder()
        .versioned("redis://unused")
        .with_config(|c| {
            c.redis.urls = cluster.urls();
            c.redis.cluster = true;
            c.redis.replicas = 1;
        })
        .spawn()
        .await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let id = app.create_product(&format!("SHARD-{n}"), 50).await.id;
        app.product(id).await; // cached
        ids.push(id);
    }
    // Every replica confirmed the publishes: no outbox row is left.
    let confirmed = crate::helpers::eventually(std::time::Duration::from_secs(5), || async {
        app.outbox_rows().await == 0
    })
    .await;
    assert!(confirmed.is_some(), "publishes confirmed by the replicas");

    // The first master dies; its replica is promoted after the node timeout.
    cluster.nodes[0].stop();
    let mut versions = std::collections::HashMap::new();
    for &id in &ids {
        let response = app.get(&format!("/v1/products/{id}")).await;
        assert!(
            !response.status().is_server_error(),
            "no 5xx during a failover"
        );
        let written = app.adjust(id, -1).await;
        versions.insert(id, written.version);
    }
    assert!(
        cluster
            .wait_until_failed_over(0, std::time::Duration::from_secs(15))
            .await,
        "a replica took over"
    );
    // Once the failover is complete, the repair bound (1 s) and a slot map refresh.
    let fresh = crate::helpers::eventually(std::time::Duration::from_secs(3), || async {
        for (&id, &version) in &versions {
            let response = app.get(&format!("/v1/products/{id}")).await;
            if response.headers()["x-cache"] == "bypass"
                || ok::<Product>(response, StatusCode::OK).await.version != version
            {
                return false;
            }
        }
        true
    })
    .await;
    assert!(
        fresh.is_some(),
        "every product is served at its acknowledged version"
    );

    // The old master returns as a replica of the new one; the relay's republishes are
    // confirmed again and the outbox empties.
    cluster.nodes[0].resume();
    let settled = crate::helpers::eventually(std::time::Duration::from_secs(15), || async {
        app.outbox_rows().await == 0
    })
    .await;
    assert!(
        settled.is_some(),
        "the outbox empties once every shard has a replica again"
    );
}
