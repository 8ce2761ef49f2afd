//! PostgreSQL: the source of truth. Connection, database creation and migrations live here;
//! one module per table group holds its queries.

pub mod orders;
pub mod outbox;
pub mod products;

use std::time::Duration;

use anyhow::Context;
use sqlx::{migrate::MigrateDatabase, postgres::PgPoolOptions, PgPool, Postgres};

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

/// Creates the database when it is missing, connects, and applies pending migrations.
///
/// Several instances may start at once: creation tolerates losing the race, and sqlx serialises
/// migrations with an advisory lock.
pub async fn connect_and_migrate(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    create_database_if_missing(url).await?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .context("connecting to PostgreSQL (DATABASE_URL)")?;
    migrate(&pool).await?;
    Ok(pool)
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
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
