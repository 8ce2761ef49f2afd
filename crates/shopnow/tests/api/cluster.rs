//! The versioned read path on a real 3-master Redis Cluster.

use reqwest::StatusCode;
use testkit::RedisCluster;

use crate::helpers::TestApp;

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
    for &id in &ids {
        let path = format!("/v1/products/{id}");
        assert_eq!(app.get(&path).await.headers()["x-cache"], "miss");
        let written = app.adjust(id, -5).await;
        let response = app.get(&path).await;
        assert_eq!(response.headers()["x-cache"], "hit");
        let read: shopnow::Product = crate::helpers::ok(response, StatusCode::OK).await;
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

    // Keys of every master hold product data: the hash tags spread the catalog.
    for node in &cluster.nodes {
        let keys: i64 = redis::cmd("DBSIZE")
            .query_async(&mut node.connection().await)
            .await
            .unwrap();
        assert!(keys > 0, "node {} holds no keys", node.port);
    }
}
