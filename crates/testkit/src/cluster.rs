//! A Redis Cluster of `redis-server` processes of one test: three masters, all 16384 slots.

use std::{process::Command, time::Duration};

use crate::RedisServer;

pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Three cluster-enabled servers joined into one cluster, returned once every node reports
    /// `cluster_state:ok`.
    pub async fn start() -> Self {
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
                    .trim()
                    .to_string();
                if state == "cluster_state:ok" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(state, "cluster_state:ok", "node {}", node.port);
        }
        Self { nodes }
    }

    /// The nodes' URLs, as `REDIS_URL` lists them.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}
