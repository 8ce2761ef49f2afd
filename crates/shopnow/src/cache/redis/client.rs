//! The client every strategy uses: reads and fills over one connection, publishes over
//! another. Every call is bounded by `SHOPNOW_REDIS_TIMEOUT_MS`: a slow or unreachable Redis
//! costs a request at most that long, then the request goes on from Postgres. With replicas, a
//! publish is followed by a `WAIT` (`replication`), which blocks the connection it runs on, and
//! reads must not wait behind it.

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context;
use redis::{Cmd, FromRedisValue, ScriptInvocation, Value};

use super::{
    config::RedisConfig,
    connection::Connection,
    error::CacheError,
    replication::{connected_replicas, ReplicaConfirmer},
};

#[derive(Clone)]
pub(crate) struct RedisClient {
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
    /// One client per node listed, for pub/sub connections (the near cache's channel). A
    /// cluster relays a `PUBLISH` to every node, so any node serves.
    subscribers: Arc<Vec<redis::Client>>,
}

impl RedisClient {
    /// Prepares the connections without contacting Redis.
    pub(crate) fn new(config: &RedisConfig) -> anyhow::Result<Self> {
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
        let subscribers = config
            .urls
            .iter()
            .map(|url| match &certificates {
                None => redis::Client::open(url.as_str()),
                Some(certificates) => {
                    redis::Client::build_with_tls(url.as_str(), certificates.clone())
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .context("REDIS_URL")?;
        Ok(Self {
            reads,
            writes,
            subscribers: Arc::new(subscribers),
            timeout: config.timeout,
            configured_replicas: config.replicas,
            required_replicas,
            confirmer: Arc::new(confirmer),
        })
    }

    /// Runs a script (EVALSHA, with SCRIPT LOAD when Redis does not know it yet) on the read
    /// connection: for reads and fills.
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, CacheError> {
        self.invoke_on(&self.reads, invocation).await
    }

    /// Runs a script on the publish connection.
    pub(crate) async fn invoke_publish<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, CacheError> {
        self.invoke_on(&self.writes, invocation).await
    }

    pub(crate) async fn query<T: FromRedisValue>(&self, command: &Cmd) -> Result<T, CacheError> {
        self.bounded(&self.reads, || async {
            let mut connection = self.reads.live().await?;
            Ok(command.query_async(&mut connection).await?)
        })
        .await
    }

    /// Sends `pipeline` on the publish connection (its writes are covered by the next `WAIT`).
    pub(crate) async fn pipeline_publish(
        &self,
        pipeline: &redis::Pipeline,
    ) -> Result<(), CacheError> {
        self.bounded(&self.writes, || async {
            let mut connection = self.writes.live().await?;
            Ok(pipeline.query_async::<()>(&mut connection).await?)
        })
        .await
    }

    /// Whether publishes must be confirmed by replicas now.
    pub(crate) fn confirms_replication(&self) -> bool {
        self.required_replicas.load(Ordering::Acquire) > 0
    }

    /// Waits until the replicas have every publish sent before this call (one `WAIT` serves
    /// every publish waiting at once); without replicas to wait for, returns at once.
    pub(crate) async fn confirm_replicated(&self) -> Result<(), CacheError> {
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
    pub(crate) async fn observe_replication(&self) -> Result<(), CacheError> {
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

    /// A new pub/sub connection subscribed to `channel`, to the node listed at `attempt`
    /// (modulo the list's length: a caller that failed tries the next one).
    pub(crate) async fn subscribe(
        &self,
        channel: &str,
        attempt: usize,
    ) -> Result<redis::aio::PubSub, CacheError> {
        let client = &self.subscribers[attempt % self.subscribers.len()];
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(self.timeout, subscribed).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(CacheError::Timeout(self.timeout)),
        }
    }

    /// Whether Redis answers PING now, and if not, why.
    pub(crate) async fn ping(&self) -> Result<(), CacheError> {
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
