//! The connection to Redis, single node or cluster, behind one type.
//!
//! Every call is bounded by `SHOPNOW_REDIS_TIMEOUT_MS`: a slow or unreachable Redis costs a
//! request at most that long, then the request goes on from Postgres. Connecting is lazy, so an
//! instance starts and serves while Redis is down and uses it as soon as it is back.
//!
//! Reads and fills go over one connection, publishes over another: with replicas, a publish is
//! followed by a `WAIT` (`replication`), which blocks the connection it runs on, and reads must
//! not wait behind it. A single node that answers `READONLY` was demoted to a replica by a
//! failover while we stayed connected to it; the connection is then made again, which reaches
//! the new primary behind the same endpoint (a Redis Cluster client follows the new slot map
//! by itself).
//!
//! `rediss://` URLs speak TLS (rustls), trusting the platform's root certificates or the
//! bundle in `SHOPNOW_REDIS_TLS_CA_FILE`, and presenting a client certificate when
//! `SHOPNOW_REDIS_TLS_CERT_FILE`/`_KEY_FILE` name one. A user and password come from the URL
//! (`rediss://user:password@host:port`); no error or log line here ever carries the URL.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, RwLock,
    },
    time::Duration,
};

use anyhow::Context;
use redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
    ClientTlsConfig, Cmd, FromRedisValue, Pipeline, RedisFuture, ScriptInvocation, TlsCertificates,
    Value,
};
use tokio::sync::OnceCell;

use super::replication::{connected_replicas, ReplicaConfirmer};

/// Where Redis is and how long to wait for it.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// One or more `redis://` URLs.
    pub urls: Vec<String>,
    /// Talk the Redis Cluster protocol to `urls` (`SHOPNOW_REDIS_CLUSTER=1`).
    pub cluster: bool,
    /// How long a product read or publish waits for Redis before it goes on from Postgres.
    pub timeout: Duration,
    /// Replicas a publish must reach before it counts (`WAIT`); 0 for a Redis without
    /// replicas. See `replication`.
    pub replicas: u32,
    /// Longest wait for the replicas to confirm a publish; past it the publish is left to the
    /// outbox relay.
    pub wait_timeout: Duration,
    /// What `rediss://` connections trust and present, when not the platform's defaults.
    pub tls: RedisTlsFiles,
}

/// PEM files for `rediss://` connections; all unset: trust the platform's root certificates
/// and present no client certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisTlsFiles {
    /// Certificate authorities trusted instead of the platform's (`SHOPNOW_REDIS_TLS_CA_FILE`).
    pub ca_file: Option<PathBuf>,
    /// A client certificate, for providers that require mutual TLS
    /// (`SHOPNOW_REDIS_TLS_CERT_FILE`), and its key (`SHOPNOW_REDIS_TLS_KEY_FILE`).
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

impl RedisTlsFiles {
    /// The certificates to hand the Redis client, read from the files; `None` when no file is
    /// set. A file that cannot be read or holds no PEM certificate is an error naming its
    /// variable, so a typo stops the start instead of failing every connection later.
    fn load(&self) -> anyhow::Result<Option<TlsCertificates>> {
        if self.ca_file.is_none() && self.client_cert_file.is_none() {
            return Ok(None);
        }
        let read = |path: &PathBuf, variable: &str| {
            std::fs::read(path).with_context(|| format!("{variable}: reading {}", path.display()))
        };
        let root_cert = match &self.ca_file {
            None => None,
            Some(path) => {
                let pem = read(path, "SHOPNOW_REDIS_TLS_CA_FILE")?;
                anyhow::ensure!(
                    contains_pem_certificate(&pem),
                    "SHOPNOW_REDIS_TLS_CA_FILE: {} holds no PEM certificate",
                    path.display()
                );
                Some(pem)
            }
        };
        let client_tls = match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: read(cert, "SHOPNOW_REDIS_TLS_CERT_FILE")?,
                client_key: read(key, "SHOPNOW_REDIS_TLS_KEY_FILE")?,
            }),
            _ => None,
        };
        Ok(Some(TlsCertificates {
            client_tls,
            root_cert,
        }))
    }
}

fn contains_pem_certificate(pem: &[u8]) -> bool {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    pem.windows(BEGIN.len()).any(|window| window == BEGIN)
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
    /// The primary applied a publish but too few replicas confirmed it in time: a failover now
    /// could lose it, so it is left to the outbox relay.
    #[error("{acked} of {wanted} replicas confirmed the write in time")]
    Unconfirmed { acked: u32, wanted: u32 },
}

impl CacheError {
    /// Redis could not be reached (refused, dropped or timed-out connections, failed TLS
    /// handshakes), as opposed to an answer that refused the command.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Timeout(_) => true,
            Self::Redis(error) => error.is_io_error() || error.is_connection_dropped(),
            Self::Protocol(_) | Self::Unconfirmed { .. } => false,
        }
    }
}

#[derive(Clone)]
pub struct RedisClient {
    reads: Connection,
    writes: Connection,
    timeout: Duration,
    /// `SHOPNOW_REDIS_REPLICAS`.
    configured_replicas: u32,
    /// Replicas a publish must reach now: the configured number, or 1 when none is configured
    /// but the primary was last seen with replicas.
    required_replicas: Arc<AtomicU32>,
    /// The `WAIT` after publishes, while `required_replicas` > 0.
    confirmer: Arc<ReplicaConfirmer>,
}

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

impl RedisClient {
    /// Prepares the connections without contacting Redis.
    pub fn new(config: &RedisConfig) -> anyhow::Result<Self> {
        // rustls picks its cryptography from what the build enables; say which, so that a
        // dependency enabling a second provider one day cannot make every TLS connection panic.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let certificates = config.tls.load()?;
        let reads = Connection::new(config, certificates.as_ref())?;
        // A connection of its own even while no replica is known: one may appear at any time.
        let writes = Connection::new(config, certificates.as_ref())?;
        let required_replicas = Arc::new(AtomicU32::new(config.replicas));
        let confirmer = ReplicaConfirmer::new(
            writes.clone(),
            required_replicas.clone(),
            config.wait_timeout,
        );
        Ok(Self {
            reads,
            writes,
            timeout: config.timeout,
            configured_replicas: config.replicas,
            required_replicas,
            confirmer: Arc::new(confirmer),
        })
    }

    /// Runs a script (EVALSHA, with SCRIPT LOAD when Redis does not know it yet) on the read
    /// connection: for reads and fills.
    pub async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, CacheError> {
        self.invoke_on(&self.reads, invocation).await
    }

    /// Runs a script on the publish connection.
    pub async fn invoke_publish<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, CacheError> {
        self.invoke_on(&self.writes, invocation).await
    }

    pub async fn query<T: FromRedisValue>(&self, command: &Cmd) -> Result<T, CacheError> {
        self.bounded(&self.reads, || async {
            let mut connection = self.reads.live().await?;
            Ok(command.query_async(&mut connection).await?)
        })
        .await
    }

    /// Whether publishes must be confirmed by replicas now.
    pub fn confirms_replication(&self) -> bool {
        self.required_replicas.load(Ordering::Acquire) > 0
    }

    /// Waits until the replicas have every publish sent before this call (one `WAIT` serves
    /// every publish waiting at once); without replicas to wait for, returns at once.
    pub async fn confirm_replicated(&self) -> Result<(), CacheError> {
        if !self.confirms_replication() {
            return Ok(());
        }
        self.confirmer.confirm(self.timeout).await
    }

    /// Looks at the primary's replicas (`INFO replication`). With `SHOPNOW_REDIS_REPLICAS=0`
    /// and replicas there all the same, publishes are confirmed by one of them from now on:
    /// forgetting the setting must not bring back the failover regression (a replica promoted
    /// without a publish the primary acknowledged). Confirming rather than refusing to start:
    /// a replica may be added to a running deployment, and a crash loop would be an outage for
    /// a setting the instance can follow by itself. Runs at start and every few seconds
    /// (`reachability`).
    pub async fn observe_replication(&self) -> Result<(), CacheError> {
        let info: Value = self.query(redis::cmd("INFO").arg("replication")).await?;
        if self.configured_replicas > 0 {
            return Ok(());
        }
        let required = u32::from(connected_replicas(&info) > 0);
        let before = self.required_replicas.swap(required, Ordering::AcqRel);
        match (before, required) {
            (0, 1) => tracing::warn!(
                "redis has replicas but SHOPNOW_REDIS_REPLICAS is 0: publishes now wait for one \
                 replica to confirm them (WAIT 1), so a failover cannot lose one; set \
                 SHOPNOW_REDIS_REPLICAS to say so explicitly"
            ),
            (1, 0) => {
                tracing::info!("redis has no replica any more: publishes no longer wait for one")
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether Redis answers PING now, and if not, why.
    pub async fn ping(&self) -> Result<(), CacheError> {
        self.query::<String>(&redis::cmd("PING")).await.map(drop)
    }

    async fn invoke_on<T: FromRedisValue>(
        &self,
        connection: &Connection,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, CacheError> {
        self.bounded(connection, || async {
            let mut live = connection.live().await?;
            Ok(invocation.invoke_async(&mut live).await?)
        })
        .await
    }

    /// Runs `call` within the timeout. A connection idle since Redis restarted or failed over
    /// finds out only when used: the call that finds it dropped is made once more, on the
    /// connection made again (every call here may run twice: reads, leases, fills and publishes
    /// are idempotent).
    async fn bounded<T, F>(
        &self,
        connection: &Connection,
        call: impl Fn() -> F,
    ) -> Result<T, CacheError>
    where
        F: std::future::Future<Output = Result<T, CacheError>>,
    {
        let attempts = async {
            match call().await {
                Err(CacheError::Redis(error)) if error.is_connection_dropped() => {
                    connection.on_error(&error);
                    call().await
                }
                other => other,
            }
        };
        let result = tokio::time::timeout(self.timeout, attempts)
            .await
            .unwrap_or(Err(CacheError::Timeout(self.timeout)));
        if let Err(CacheError::Redis(error)) = &result {
            connection.on_error(error);
        }
        result
    }
}

impl Connection {
    fn new(config: &RedisConfig, certificates: Option<&TlsCertificates>) -> anyhow::Result<Self> {
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
    fn on_error(&self, error: &redis::RedisError) {
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
