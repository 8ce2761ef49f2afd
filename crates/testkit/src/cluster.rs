//! A Redis Cluster of `redis-server` processes of one test: three masters, all 16384 slots.

use std::{process::Command, sync::Arc, time::Duration};

use crate::{RedisServer, TestCertificates};

pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Three cluster-enabled servers joined into one cluster, returned once every node reports
    /// `cluster_state:ok`.
    pub async fn start() -> Self {
        Self::start_with_replicas(0).await
    }

    /// Three masters with `replicas` replicas each (the first three nodes are the masters),
    /// returned once every node reports `cluster_state:ok` and every replica is in sync.
    pub async fn start_with_replicas(replicas: usize) -> Self {
        Self::start_inner(replicas, None).await
    }

    /// Three masters that speak TLS only, to clients and to each other.
    pub async fn start_tls(certificates: &Arc<TestCertificates>) -> Self {
        Self::start_inner(0, Some(certificates)).await
    }

    async fn start_inner(replicas: usize, tls: Option<&Arc<TestCertificates>>) -> Self {
        let cluster_args = ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"];
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| match tls {
                None => RedisServer::start_with(&cluster_args),
                Some(certificates) => RedisServer::start_tls(certificates, &cluster_args),
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(tls.map(|c| c.redis_cli_args()).unwrap_or_default())
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
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
        let cluster = Self { nodes };
        for node in &cluster.nodes {
            cluster.wait_until_in_sync(node).await;
        }
        cluster
    }

    /// Waits until `node`, if it is a replica, has loaded its master's data (polled, bounded).
    pub async fn wait_until_in_sync(&self, node: &RedisServer) {
        let mut connection = node.connection().await;
        for _ in 0..200 {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut connection)
                .await
                .unwrap();
            let replica = info.contains("role:slave");
            if !replica
                || (info.contains("master_link_status:up")
                    && info.contains("master_sync_in_progress:0"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node {} did not sync within 10 s", node.port);
    }

    /// Waits until every running node but `except` reports `cluster_state:ok` (after a
    /// failover, once a replica took over; polled, bounded by `limit`).
    pub async fn wait_until_healthy(&self, except: usize, limit: Duration) -> bool {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            let mut healthy = true;
            for (n, node) in self.nodes.iter().enumerate() {
                if n == except {
                    continue;
                }
                let info: redis::RedisResult<String> = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut node.connection().await)
                    .await;
                healthy &= info.is_ok_and(|i| i.contains("cluster_state:ok"));
            }
            if healthy {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// The nodes' URLs, as `REDIS_URL` lists them.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}
