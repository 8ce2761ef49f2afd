//! The versioned read path on a real 3-master Redis Cluster.

use std::{process::Command, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use shopnow::cache::CacheStrategy;

use crate::{
    helpers::{cached_config, spawn_app_with, unique_prefix, TestDatabase},
    redis_server::RedisServer,
};

/// Three cluster-enabled servers joined into one cluster with all 16384 slots assigned.
struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    async fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli is installed (scripts/setup)");
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stdout)
        );

        // Nodes agree on the slot map by gossip; there is no event to await, so poll, bounded.
        for node in &nodes {
            let mut connection = node.connection().await;
            let mut state = String::new();
            for _ in 0..100 {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut connection)
                    .await
                    .unwrap();
                state = info
                    .lines()
                    .find(|l| l.starts_with("cluster_state:"))
                    .unwrap_or("")
                    .to_string();
                if state.trim() == "cluster_state:ok" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(state.trim(), "cluster_state:ok", "node {}", node.port);
        }
        Self { nodes }
    }

    fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[tokio::test]
async fn versioned_reads_work_the_same_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let db = TestDatabase::new();
    let mut config = cached_config(
        &db,
        CacheStrategy::Versioned,
        "redis://unused",
        &unique_prefix(),
    );
    config.redis.urls = cluster.urls().split(',').map(String::from).collect();
    config.redis.cluster = true;
    let app = spawn_app_with(config, db).await;

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
        let read: Value = response.json().await.unwrap();
        assert_eq!(
            (read["version"].as_i64(), read["stock"].as_i64()),
            (written["version"].as_i64(), Some(45))
        );
    }

    let gone = format!("/v1/products/{}", ids[0]);
    assert_eq!(
        app.admin(Method::DELETE, &gone)
            .send()
            .await
            .unwrap()
            .status(),
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
