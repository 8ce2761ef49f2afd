//! One connection to Redis, single node or cluster, behind one type, made lazily: an instance
//! starts and serves while Redis is down and uses it as soon as it is back. A single node that
//! answers `READONLY` was demoted to a replica by a failover while we stayed connected to it;
//! the connection is then made again, which reaches the new primary behind the same endpoint
//! (a Redis Cluster client follows the new slot map by itself).

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use anyhow::Context;
use redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
    Cmd, Pipeline, RedisFuture, TlsCertificates, Value,
};
use tokio::sync::OnceCell;

use super::{config::RedisConfig, error::CacheError};

#[derive(Clone)]
pub(super) enum Connection {
    Single(Arc<SingleNode>),
    Cluster(Arc<LazyCluster>),
}

/// One node's connection, made again when the node turned out to be a replica.
pub(super) struct SingleNode {
    client: redis::Client,
    config: ConnectionManagerConfig,
    manager: RwLock<ConnectionManager>,
}

/// A cluster connection made on first use; until it succeeds, each call tries again.
pub(super) struct LazyCluster {
    client: ClusterClient,
    connection: OnceCell<ClusterConnection>,
}

impl Connection {
    pub(super) fn new(
        config: &RedisConfig,
        certificates: Option<&TlsCertificates>,
    ) -> anyhow::Result<Self> {
        if config.cluster {
            let mut builder = ClusterClient::builder(config.urls.clone())
                .connection_timeout(config.timeout)
                .response_timeout(config.timeout)
                .retries(1);
            if let Some(certificates) = certificates {
                builder = builder.certs(certificates.clone());
            }
            let client = builder
                .build()
                .context("REDIS_URL: invalid cluster node list")?;
            return Ok(Self::Cluster(Arc::new(LazyCluster {
                client,
                connection: OnceCell::new(),
            })));
        }
        anyhow::ensure!(
            config.urls.len() == 1,
            "REDIS_URL: several nodes need SHOPNOW_REDIS_CLUSTER=1"
        );
        let client = match certificates {
            None => redis::Client::open(config.urls[0].as_str()).context("REDIS_URL"),
            // Also refused here: a client certificate or key that is not PEM.
            Some(certificates) => {
                redis::Client::build_with_tls(config.urls[0].as_str(), certificates.clone())
                    .context("REDIS_URL with the SHOPNOW_REDIS_TLS_* files")
            }
        }?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let manager =
            ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())
                .context("preparing the Redis connection")?;
        Ok(Self::Single(Arc::new(SingleNode {
            client,
            config: manager_config,
            manager: RwLock::new(manager),
        })))
    }

    pub(super) async fn live(&self) -> Result<LiveConnection, CacheError> {
        match self {
            Self::Single(node) => Ok(LiveConnection::Single(
                node.manager
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            )),
            Self::Cluster(lazy) => {
                let connection = lazy
                    .connection
                    .get_or_try_init(|| lazy.client.get_async_connection())
                    .await?;
                Ok(LiveConnection::Cluster(connection.clone()))
            }
        }
    }

    /// A node that answers READONLY is a replica now: connect again, to whatever the endpoint
    /// leads to (the new primary).
    pub(super) fn on_error(&self, error: &redis::RedisError) {
        let Self::Single(node) = self else {
            return;
        };
        if error.kind() != redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly) {
            return;
        }
        tracing::warn!("redis answered READONLY: it was demoted by a failover; connecting again");
        if let Ok(fresh) =
            ConnectionManager::new_lazy_with_config(node.client.clone(), node.config.clone())
        {
            *node.manager.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        }
    }
}

/// A connection ready for one call; both kinds are cheap clones of a shared multiplexer.
pub(super) enum LiveConnection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for LiveConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}
