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
        for node in &nodes {
            node.wait_until_replica_in_sync().await;
        }
        Self { nodes }
    }

    /// Waits until the cluster has failed over from the stopped node `dead`: the other nodes
    /// no longer give it any slot (a replica took them over) and each reports
    /// `cluster_state:ok`. Before the node timeout passes, the cluster still reports ok with
    /// the dead node holding its slots, so `cluster_state` alone says nothing. Polled (gossip
    /// has no event to await), bounded by `limit`.
    pub async fn wait_until_failed_over(&self, dead: usize, limit: Duration) -> bool {
        let dead_address = format!("127.0.0.1:{}@", self.nodes[dead].port);
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            let mut failed_over = true;
            for (n, node) in self.nodes.iter().enumerate() {
                if n == dead {
                    continue;
                }
                let mut connection = node.connection().await;
                let info: redis::RedisResult<String> = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut connection)
                    .await;
                let nodes: redis::RedisResult<String> = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut connection)
                    .await;
                // A line of CLUSTER NODES: id, address, flags, master, ping, pong, epoch,
                // link state, then the slot ranges the node serves.
                let dead_holds_slots = nodes.map_or(true, |nodes| {
                    nodes.lines().any(|line| {
                        line.contains(&dead_address) && line.split_whitespace().count() > 8
                    })
                });
                failed_over &=
                    info.is_ok_and(|i| i.contains("cluster_state:ok")) && !dead_holds_slots;
            }
            if failed_over {
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
