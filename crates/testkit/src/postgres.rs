//! Databases of one test or one run: a unique name on the machine's Postgres, dropped at the end,
//! so that suites run twice or in parallel never meet.

use std::time::Duration;

use sqlx::{migrate::MigrateDatabase, Connection, PgConnection, Postgres};

/// Server part of the test database URLs; `SHOPNOW_TEST_POSTGRES` overrides it.
pub fn postgres_server() -> String {
    std::env::var("SHOPNOW_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

/// A database with a name of its own, dropped (with `FORCE`) when this value is dropped.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// A fresh name; the database is created by whoever connects first (the app creates a
    /// missing database at start) or by `create`.
    pub fn new(prefix: &str) -> Self {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let url = format!("{}/{name}", postgres_server());
        Self { name, url }
    }

    /// Creates the database now.
    pub async fn create(prefix: &str) -> anyhow::Result<Self> {
        let database = Self::new(prefix);
        Postgres::create_database(&database.url).await?;
        Ok(database)
    }

    /// Forgets the database without dropping it (the `testkit database create` command).
    pub fn keep(self) -> String {
        let url = self.url.clone();
        std::mem::forget(self);
        url
    }

    /// Drops the database named in `url`, retrying while parallel suites hold every Postgres
    /// connection.
    pub async fn drop_by_url(url: &str) -> anyhow::Result<()> {
        let (server, name) = url
            .rsplit_once('/')
            .ok_or_else(|| anyhow::anyhow!("{url:?} names no database"))?;
        let name = name.split('?').next().unwrap_or(name);
        anyhow::ensure!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name:?} is not a test database name"
        );
        let admin = format!("{server}/postgres");
        let mut last_error = None;
        for attempt in 1..=10u64 {
            match PgConnection::connect(&admin).await {
                Ok(mut conn) => {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    match sqlx::query(&drop).execute(&mut conn).await {
                        Ok(_) => return Ok(()),
                        Err(e) => last_error = Some(e),
                    }
                }
                Err(e) => last_error = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
        }
        Err(last_error.expect("ten attempts failed").into())
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs outside async code (and during a panic), so use a runtime of its own.
        let url = self.url.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(Self::drop_by_url(&url))
        })
        .join();
    }
}
