//! PostgreSQL: the source of truth. Connection, database creation and migrations live here;
//! one module per table group holds its queries.

pub(crate) mod categories;
pub(crate) mod holds;
mod idempotency;
pub(crate) mod listing;
pub(crate) mod orders;
pub(crate) mod outbox;
pub(crate) mod products;
mod stock;

pub(crate) use stock::lock_product;

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    migrate::MigrateDatabase,
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool, Postgres,
};

/// Postgres error code for "database already exists".
const DUPLICATE_DATABASE: &str = "42P04";
/// The unique index of the database catalog: two `CREATE DATABASE` of one name at the same
/// moment both pass the existence check, and the loser fails on this index instead.
const DATABASE_NAME_INDEX: &str = "pg_database_datname_index";

/// Postgres error code for a unique violation.
const UNIQUE_VIOLATION: &str = "23505";

/// Whether `err` is a unique violation of `constraint`.
fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some(UNIQUE_VIOLATION) && db.constraint() == Some(constraint)
        }
        _ => false,
    }
}

/// Where Postgres is, and the limits of the connections that serve requests.
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    pub url: String,
    /// Connections that serve requests (and the background tasks).
    pub pool_size: u32,
    /// Longest wait for a free connection; past it the request answers 503 `unavailable`.
    pub acquire_timeout: Duration,
    /// Longest wait for a row lock (`lock_timeout`); past it the request answers 503 `busy`.
    pub lock_timeout: Duration,
    /// Longest statement (`statement_timeout`) on a request connection.
    pub statement_timeout: Duration,
    /// How long an instance that starts while Postgres is away (refusing connections, starting
    /// up, not yet resolvable) keeps trying before it gives up: containers start in any order.
    pub startup_timeout: Duration,
}

/// The instance's connections to Postgres.
#[derive(Clone)]
pub struct Database {
    /// Serves requests and the background tasks, every session bounded by the configured lock
    /// and statement timeouts, so that one locked row cannot hold connections for long.
    pub pool: PgPool,
    /// One connection of its own for readiness checks: request traffic can use every
    /// connection of `pool` without making the instance look down.
    pub health: PgPool,
    /// One connection of its own for the relay's LISTEN, which holds it for good.
    pub notifications: PgPool,
}

impl Database {
    /// `connect_and_migrate`, tried again with backoff while Postgres is temporarily away, for
    /// at most `startup_timeout`. A permanent error (a refused password, a failed migration)
    /// ends it at once.
    pub async fn connect_and_migrate_patiently(config: &DatabaseConfig) -> anyhow::Result<Self> {
        let deadline = tokio::time::Instant::now() + config.startup_timeout;
        let mut pause = Duration::from_millis(100);
        loop {
            match Self::connect_and_migrate(config).await {
                Ok(database) => return Ok(database),
                Err(error) => {
                    let temporary = error
                        .chain()
                        .filter_map(|cause| cause.downcast_ref::<sqlx::Error>())
                        .any(|cause| crate::error::database_trouble(cause).is_some());
                    let now = tokio::time::Instant::now();
                    if !temporary || now + pause > deadline {
                        return Err(error);
                    }
                    tracing::warn!(
                        error = format!("{error:#}"),
                        retry_in_ms = pause.as_millis() as u64,
                        "PostgreSQL is not available yet; trying again (SHOPNOW_DB_STARTUP_TIMEOUT_SECS)"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Creates the database when it is missing, applies pending migrations (on a connection
    /// without the request timeouts: a migration may take long), and opens the pools.
    ///
    /// Several instances may start at once: creation tolerates losing the race, and sqlx
    /// serialises migrations with an advisory lock.
    pub async fn connect_and_migrate(config: &DatabaseConfig) -> anyhow::Result<Self> {
        let plain = connect_plain(&config.url, 1).await?;
        migrate(&plain).await?;
        plain.close().await;

        let bounded = instance_options(&config.url)?.options([
            ("lock_timeout", millis(config.lock_timeout)),
            ("statement_timeout", millis(config.statement_timeout)),
            // A transaction its client abandoned gives its locks back.
            (
                "idle_in_transaction_session_timeout",
                millis(IDLE_IN_TRANSACTION_TIMEOUT),
            ),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(config.pool_size)
            .acquire_timeout(config.acquire_timeout)
            .connect_with(bounded.clone())
            .await
            .context("connecting to PostgreSQL (DATABASE_URL)")?;
        let health = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(HEALTH_CHECK_TIMEOUT)
            .connect_lazy_with(bounded.clone());
        let notifications = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(bounded);
        Ok(Self {
            pool,
            health,
            notifications,
        })
    }

    /// Whether Postgres answers a trivial query within `HEALTH_CHECK_TIMEOUT`, on the
    /// readiness check's own connection.
    pub async fn ready(&self) -> bool {
        tokio::time::timeout(
            HEALTH_CHECK_TIMEOUT,
            sqlx::query("SELECT 1").execute(&self.health),
        )
        .await
        .is_ok_and(|result| result.is_ok())
    }
}

/// The database's history (`shopnow_history()`, see the migration `database_history`: 0 until
/// its first failover or point-in-time recovery, one more with each), and its clock now
/// (`clock_timestamp()`, ms since the epoch).
pub(crate) async fn history_and_clock(pool: &PgPool) -> crate::error::Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT shopnow_history(), (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
    )
    .fetch_one(pool)
    .await?)
}

/// How long a readiness check waits for Postgres before calling it down.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// An idle transaction is ended after this (`idle_in_transaction_session_timeout`).
const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

/// The options of every shopnow session: `shopnow.writer = instance` tells the outbox triggers
/// that this writer publishes its own changes (so the relay need not, unless it died), unlike
/// an ERP sync or an admin in psql. The sessions are named `shopnow` in `pg_stat_activity`
/// unless DATABASE_URL names them (`?application_name=`).
fn instance_options(url: &str) -> anyhow::Result<PgConnectOptions> {
    let options = PgConnectOptions::from_str(url).context("DATABASE_URL")?;
    let options = match options.get_application_name() {
        Some(_) => options,
        None => options.application_name("shopnow"),
    };
    Ok(options.options([("shopnow.writer", "instance")]))
}

/// A pool without the request timeouts, for commands (`migrate`, `seed`) that may run long;
/// the database is created first if it is missing.
pub(crate) async fn connect_plain(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    create_database_if_missing(url).await?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(instance_options(url)?)
        .await
        .context("connecting to PostgreSQL (DATABASE_URL)")
}

pub(crate) async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::migrate!("./migrations")
        .run(pool)
        .await
        .context("applying database migrations")
}

async fn create_database_if_missing(url: &str) -> anyhow::Result<()> {
    let exists = Postgres::database_exists(url)
        .await
        .context("checking whether the database exists (DATABASE_URL)")?;
    if exists {
        return Ok(());
    }
    match Postgres::create_database(url).await {
        Ok(()) => {
            tracing::info!("created the database named in DATABASE_URL");
            Ok(())
        }
        // Another instance created it a moment earlier: that is what this call wanted.
        Err(e) if created_by_another(&e) => Ok(()),
        Err(e) => Err(e).context("creating the database named in DATABASE_URL"),
    }
}

fn created_by_another(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => {
            e.code().as_deref() == Some(DUPLICATE_DATABASE)
                || is_unique_violation(error, DATABASE_NAME_INDEX)
        }
        _ => false,
    }
}
