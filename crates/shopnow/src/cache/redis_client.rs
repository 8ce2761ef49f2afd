//! The connection to Redis, single node or cluster, behind one type.
//!
//! Every call is bounded by `SHOPNOW_REDIS_TIMEOUT_MS`: a slow or unreachable Redis costs a
//! request at most that long, then the request goes on from Postgres. Connecting is lazy, so an
//! instance starts and serves while Redis is down and uses it as soon as it is back.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
    Cmd, FromRedisValue, Pipeline, RedisFuture, ScriptInvocation, Value,
};
use tokio::sync::OnceCell;

/// Where Redis is and how long to wait for it.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// One or more `redis://` URLs.
    pub urls: Vec<String>,
    /// Talk the Redis Cluster protocol to `urls` (`SHOPNOW_REDIS_CLUSTER=1`).
    pub cluster: bool,
    /// How long a product read or publish waits for Redis before it goes on from Postgres.
    pub timeout: Duration,
}

/// A Redis failure, or no answer in time. The caller falls back to Postgres.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis answered something unexpected: {0}")]
    Protocol(String),
}

#[derive(Clone)]
pub struct RedisClient {
    connection: Connection,
    timeout: Duration,
}

#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(Arc<LazyCluster>),
}

/// A cluster connection made on first use; until it succeeds, each call tries again.
struct LazyCluster {
    client: ClusterClient,
    connection: OnceCell<ClusterConnection>,
}

impl RedisClient {
    /// Prepares the connection without contacting Redis.
    pub fn new(config: &RedisConfig) -> anyhow::Result<Self> {
        let connection = if config.cluster {
            let client = ClusterClient::builder(config.urls.clone())
                .connection_timeout(config.timeout)
                .response_timeout(config.timeout)
                .retries(1)
                .build()
                .context("REDIS_URL: invalid cluster node list")?;
            Connection::Cluster(Arc::new(LazyCluster {
                client,
                connection: OnceCell::new(),
            }))
        } else {
            anyhow::ensure!(
                config.urls.len() == 1,
                "REDIS_URL: several nodes need SHOPNOW_REDIS_CLUSTER=1"
            );
            let client = redis::Client::open(config.urls[0].as_str()).context("REDIS_URL")?;
            let manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.timeout))
                .set_response_timeout(Some(config.timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500));
            Connection::Single(
                ConnectionManager::new_lazy_with_config(client, manager_config)
                    .context("preparing the Redis connection")?,
            )
        };
        Ok(Self {
            connection,
            timeout: config.timeout,
        })
    }

    /// Runs a script (EVALSHA, with SCRIPT LOAD when Redis does not know it yet).
    pub async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, CacheError> {
        self.bounded(async {
            let mut connection = self.connection().await?;
            Ok(invocation.invoke_async(&mut connection).await?)
        })
        .await
    }

    pub async fn query<T: FromRedisValue>(&self, command: &Cmd) -> Result<T, CacheError> {
        self.bounded(async {
            let mut connection = self.connection().await?;
            Ok(command.query_async(&mut connection).await?)
        })
        .await
    }

    /// Whether Redis answers PING now.
    pub async fn ping(&self) -> bool {
        self.query::<String>(&redis::cmd("PING")).await.is_ok()
    }

    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or(Err(CacheError::Timeout(self.timeout)))
    }

    async fn connection(&self) -> Result<LiveConnection, CacheError> {
        match &self.connection {
            Connection::Single(manager) => Ok(LiveConnection::Single(manager.clone())),
            Connection::Cluster(lazy) => {
                let connection = lazy
                    .connection
                    .get_or_try_init(|| lazy.client.get_async_connection())
                    .await?;
                Ok(LiveConnection::Cluster(connection.clone()))
            }
        }
    }
}

/// A connection ready for one call; both kinds are cheap clones of a shared multiplexer.
enum LiveConnection {
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
