//! A Redis primary with one replica, as managed services run them: clients reach the primary
//! through an endpoint that moves on a failover (a proxy, as ElastiCache's primary endpoint is a
//! DNS name), and the replication link runs through a proxy the test can hold, so that a write
//! the primary acknowledged can be lost on a failover for real.

use std::{net::SocketAddr, sync::Arc};

use crate::{RedisServer, TcpProxy, TestCertificates};

pub struct ReplicatedRedis {
    primary: RedisServer,
    replica: RedisServer,
    /// Between the replica and the primary.
    link: TcpProxy,
    /// What clients connect to: the current primary.
    endpoint: TcpProxy,
}

fn address(server: &RedisServer) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], server.port))
}

impl ReplicatedRedis {
    /// A primary and a replica in sync, behind a primary endpoint.
    pub async fn start() -> Self {
        Self::start_inner(None).await
    }

    /// The same, speaking TLS only (replication too); the proxies pass TLS through untouched.
    pub async fn start_tls(certificates: &Arc<TestCertificates>) -> Self {
        Self::start_inner(Some(certificates)).await
    }

    async fn start_inner(tls: Option<&Arc<TestCertificates>>) -> Self {
        let primary = match tls {
            None => RedisServer::start(),
            Some(certificates) => RedisServer::start_tls(certificates, &[]),
        };
        let (replica, link) = Self::replica_of(&primary).await;
        let endpoint = TcpProxy::start(address(&primary));
        Self {
            primary,
            replica,
            link,
            endpoint,
        }
    }

    async fn replica_of(primary: &RedisServer) -> (RedisServer, TcpProxy) {
        let link = TcpProxy::start(address(primary));
        let link_port = link.port.to_string();
        let args = [
            "--replicaof",
            "127.0.0.1",
            &link_port,
            "--repl-timeout",
            "60",
        ];
        let replica = match primary.certificates() {
            None => RedisServer::start_with(&args),
            Some(certificates) => RedisServer::start_tls(certificates, &args),
        };
        replica.wait_until_replica_in_sync().await;
        (replica, link)
    }

    /// The URL clients use: the primary endpoint.
    pub fn url(&self) -> String {
        let scheme = if self.primary.certificates().is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://{}", self.endpoint.address())
    }

    /// Stops replication: the primary goes on acknowledging writes the replica never gets.
    pub fn hold_replication(&self) {
        self.link.hold();
    }

    pub fn resume_replication(&self) {
        self.link.forward();
    }

    pub async fn primary_connection(&self) -> redis::aio::MultiplexedConnection {
        self.primary.connection().await
    }

    pub async fn replica_connection(&self) -> redis::aio::MultiplexedConnection {
        self.replica.connection().await
    }

    /// The primary dies; the replica, with whatever it received, is promoted; the endpoint moves
    /// to it (connections to the old primary die); a new replica of the new primary is started
    /// and synced, so that writes can be confirmed again.
    pub async fn fail_over(&mut self) {
        self.primary.stop();
        let _: () = redis::cmd("REPLICAOF")
            .arg("NO")
            .arg("ONE")
            .query_async(&mut self.replica.connection().await)
            .await
            .expect("the replica is promoted");
        self.endpoint.redirect(address(&self.replica));
        let (replica, link) = Self::replica_of(&self.replica).await;
        self.primary = std::mem::replace(&mut self.replica, replica);
        self.link = link;
    }
}
