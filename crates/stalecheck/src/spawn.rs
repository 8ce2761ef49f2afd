//! What `stalecheck --spawn` starts: its own `redis-server`, a fresh database, and instances of
//! the `shopnow` binary on free loopback ports, all stopped when the run ends.

use std::{collections::HashMap, path::PathBuf};

use sqlx::PgPool;
use testkit::{
    free_port, RedisServer, ReplicatedPostgres, ReplicatedRedis, ShopnowProcess, TestDatabase,
};

/// Everything an instance is started with.
#[derive(Clone, Debug)]
pub struct InstanceSpec {
    /// The `shopnow` binary.
    pub binary: PathBuf,
    pub database_url: String,
    pub redis_url: String,
    pub strategy: String,
    pub prefix: String,
    pub admin_token: String,
    pub fill_delay_ms: Option<u64>,
    /// `SHOPNOW_NEAR_CACHE=on`.
    pub near_cache: bool,
    /// `SHOPNOW_FAULTS` for the instance, e.g. `crash-after-commit=0.002`.
    pub faults: Option<String>,
    /// Replicas each publish must reach (`SHOPNOW_REDIS_REPLICAS`).
    pub redis_replicas: u32,
}

impl InstanceSpec {
    /// Starts an instance on a port of its own, which `ShopnowProcess::resume` reuses after a
    /// kill or a crash.
    pub fn start(&self) -> anyhow::Result<ShopnowProcess> {
        let listen = format!("127.0.0.1:{}", free_port());
        let env: Vec<(&str, &str)> = vec![
            ("DATABASE_URL", &self.database_url),
            ("REDIS_URL", &self.redis_url),
            ("SHOPNOW_REDIS_CLUSTER", "0"),
            ("SHOPNOW_CACHE_STRATEGY", &self.strategy),
            ("SHOPNOW_CACHE_PREFIX", &self.prefix),
            ("SHOPNOW_ADMIN_TOKEN", &self.admin_token),
            ("SHOPNOW_LISTEN", &listen),
            ("RUST_LOG", "warn,shopnow::app=info"),
            // The sampler repairs what it finds, which would hide the naive strategies' bugs.
            ("SHOPNOW_SAMPLER_RATE", "0"),
            // The checker's readers, writers and holders all send from one address: a rate
            // limit per client would refuse most of them.
            ("SHOPNOW_RATE_LIMIT_PER_MINUTE", "0"),
            // Empty counts as unset: the checker's own environment never leaks faults in.
            ("SHOPNOW_FAULTS", self.faults.as_deref().unwrap_or("")),
        ];
        let replicas = self.redis_replicas.to_string();
        let mut env = env;
        env.push(("SHOPNOW_REDIS_REPLICAS", &replicas));
        env.push((
            "SHOPNOW_NEAR_CACHE",
            if self.near_cache { "on" } else { "off" },
        ));
        let delay = self.fill_delay_ms.map(|ms| ms.to_string());
        let args: Vec<&str> = match &delay {
            Some(ms) => vec!["--fill-delay-ms", ms],
            None => Vec::new(),
        };
        ShopnowProcess::start(&self.binary, &args, &env)
    }
}

/// The Redis of a run: one node, or a primary with a replica behind a moving endpoint.
pub enum RunRedis {
    Single(RedisServer),
    Replicated(Box<ReplicatedRedis>),
}

impl RunRedis {
    pub async fn start(replicated: bool) -> anyhow::Result<Self> {
        Ok(if replicated {
            Self::Replicated(Box::new(ReplicatedRedis::start().await))
        } else {
            Self::Single(tokio::task::spawn_blocking(|| RedisServer::try_start_with(&[])).await??)
        })
    }

    /// What the instances connect to.
    pub fn url(&self) -> String {
        match self {
            Self::Single(redis) => redis.url(),
            Self::Replicated(redis) => redis.url(),
        }
    }

    /// Replicas a publish must reach.
    pub fn replicas(&self) -> u32 {
        match self {
            Self::Single(_) => 0,
            Self::Replicated(_) => 1,
        }
    }
}

/// A run's own Redis and database: the database on the machine's Postgres, or on a primary
/// with an asynchronous standby of the run's own (`--postgres replicated`), which a
/// `pg-failover` promotes. Fields drop in order: the database before the servers under it.
pub struct Deployment {
    pub redis: RunRedis,
    pub database: TestDatabase,
    pub postgres: Option<ReplicatedPostgres>,
}

impl Deployment {
    pub async fn create(replicated_redis: bool, replicated_postgres: bool) -> anyhow::Result<Self> {
        let redis = RunRedis::start(replicated_redis).await?;
        let postgres = match replicated_postgres {
            false => None,
            true => Some(tokio::task::spawn_blocking(ReplicatedPostgres::start).await??),
        };
        let database = match &postgres {
            None => TestDatabase::create("shopnow_stalecheck").await?,
            Some(postgres) => {
                let name = format!("shopnow_stalecheck_{}", uuid::Uuid::new_v4().simple());
                TestDatabase {
                    url: postgres.url(&name),
                    name,
                }
            }
        };
        Ok(Self {
            redis,
            database,
            postgres,
        })
    }
}

/// Every product's stamp in Postgres (history and version: `shopnow_contract::stamps`): the
/// newest any write produced.
pub use crate::reservations::Kept;

pub async fn final_versions(database: &TestDatabase) -> anyhow::Result<HashMap<i64, i64>> {
    let pool = PgPool::connect(&database.url).await?;
    let rows: Vec<(i64, i64, i64)> =
        sqlx::query_as("SELECT id, version, (SELECT shopnow_history()) FROM products")
            .fetch_all(&pool)
            .await?;
    pool.close().await;
    Ok(rows
        .into_iter()
        .map(|(id, version, history)| (id, shopnow_contract::stamps::stamp(history, version)))
        .collect())
}

/// What the database kept of the holders' work: each hold's status and each order's, by id.
/// A failover that loses commits loses acknowledged ones too (`reservations::reconcile`).
pub async fn kept_holds_and_orders(database: &TestDatabase) -> anyhow::Result<Kept> {
    let pool = PgPool::connect(&database.url).await?;
    let holds: Vec<(String, String)> = sqlx::query_as("SELECT id::text, status FROM holds")
        .fetch_all(&pool)
        .await?;
    let orders: Vec<(i64, String, Option<String>)> =
        sqlx::query_as("SELECT id, status, hold_id::text FROM orders")
            .fetch_all(&pool)
            .await?;
    pool.close().await;
    Ok(Kept {
        holds: holds.into_iter().collect(),
        orders: orders
            .into_iter()
            .map(|(id, status, hold)| {
                (
                    id,
                    (status, hold.and_then(|h| uuid::Uuid::try_parse(&h).ok())),
                )
            })
            .collect(),
    })
}
