//! What `stalecheck --spawn` starts: its own `redis-server`, a fresh database, and instances of
//! the `shopnow` binary on free loopback ports, all stopped when the run ends.

use std::{collections::HashMap, path::PathBuf};

use sqlx::PgPool;
use testkit::{free_port, RedisServer, ShopnowProcess, TestDatabase};

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
    /// `SHOPNOW_FAULTS` for the instance, e.g. `crash-after-commit=0.002`.
    pub faults: Option<String>,
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
            // Empty counts as unset: the checker's own environment never leaks faults in.
            ("SHOPNOW_FAULTS", self.faults.as_deref().unwrap_or("")),
        ];
        let delay = self.fill_delay_ms.map(|ms| ms.to_string());
        let args: Vec<&str> = match &delay {
            Some(ms) => vec!["--fill-delay-ms", ms],
            None => Vec::new(),
        };
        ShopnowProcess::start(&self.binary, &args, &env)
    }
}

/// A run's own Redis and database.
pub struct Deployment {
    pub redis: RedisServer,
    pub database: TestDatabase,
}

impl Deployment {
    pub async fn create() -> anyhow::Result<Self> {
        let redis = tokio::task::spawn_blocking(|| RedisServer::try_start_with(&[])).await??;
        let database = TestDatabase::create("shopnow_stalecheck").await?;
        Ok(Self { redis, database })
    }
}

/// Every product's version in Postgres: the newest any write produced.
pub async fn final_versions(database: &TestDatabase) -> anyhow::Result<HashMap<i64, i64>> {
    let pool = PgPool::connect(&database.url).await?;
    let rows: Vec<(i64, i64)> = sqlx::query_as("SELECT id, version FROM products")
        .fetch_all(&pool)
        .await?;
    pool.close().await;
    Ok(rows.into_iter().collect())
}
