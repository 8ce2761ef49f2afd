//! Test harness: a fresh database per test and real instances of the app on free ports.

use std::sync::Arc;

use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use shopnow::{
    app::Application,
    cache::{CacheHooks, CacheStrategy},
    catalog::Catalog,
    config::{Config, LogFormat},
};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::oneshot;

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Server part of the test database URLs; `SHOPNOW_TEST_POSTGRES` overrides it.
fn postgres_server() -> String {
    std::env::var("SHOPNOW_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

/// A database of this test's own, dropped when the last handle goes.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub fn new() -> Arc<Self> {
        let name = format!("shopnow_test_{}", uuid::Uuid::new_v4().simple());
        let url = format!("{}/{name}", postgres_server());
        Arc::new(Self { name, url })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs outside async code (and during a panic), so use a runtime of its own.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let url = format!("{}/postgres", postgres_server());
                // Suites running in parallel can briefly use every Postgres connection: retry.
                for attempt in 1..=10u64 {
                    if let Ok(mut conn) = PgConnection::connect(&url).await {
                        let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        if sqlx::query(&drop).execute(&mut conn).await.is_ok() {
                            return;
                        }
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                }
            });
        })
        .join();
    }
}

/// A configuration using `strategy` on the Redis at `redis_url`, under a key prefix of its
/// own so that tests sharing one Redis never see each other's keys.
pub fn cached_config(
    db: &TestDatabase,
    strategy: CacheStrategy,
    redis_url: &str,
    prefix: &str,
) -> Config {
    let mut config = test_config(db);
    config.cache.strategy = strategy;
    config.cache.prefix = prefix.to_string();
    config.redis.urls = vec![redis_url.to_string()];
    config
}

/// One `versioned` instance on `redis_url`, with a database and a key prefix of its own.
pub async fn spawn_versioned(redis_url: &str) -> TestApp {
    let db = TestDatabase::new();
    let config = cached_config(&db, CacheStrategy::Versioned, redis_url, &unique_prefix());
    spawn_app_with(config, db).await
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

/// The shared Redis of the machine, for tests that neither flush, restart nor count commands.
pub const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

/// One running instance and a client for it.
pub struct TestApp {
    pub address: String,
    pub client: Client,
    /// Keeps the database alive while the app runs; other instances may share it.
    pub db: Arc<TestDatabase>,
    pub pool: PgPool,
    /// The instance's own catalog, for counters and for writes that skip HTTP.
    pub catalog: Catalog,
    /// The instance's Redis key prefix.
    pub prefix: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// The configuration tests start from: a fresh database, port 0, the `none` strategy.
pub fn test_config(db: &TestDatabase) -> Config {
    let mut config = Config::from_lookup(|_| None).expect("defaults are valid");
    config.database_url = db.url.clone();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_token = Some(ADMIN_TOKEN.to_string());
    config.cache.strategy = CacheStrategy::None;
    config.log_format = LogFormat::Text;
    // The sampler repairs what it finds; tests of the naive strategies want their bugs intact.
    config.sampler_rate = 0;
    config
}

pub async fn spawn_app() -> TestApp {
    let db = TestDatabase::new();
    spawn_app_with(test_config(&db), db).await
}

pub async fn spawn_app_with(config: Config, db: Arc<TestDatabase>) -> TestApp {
    spawn_app_with_hooks(config, db, CacheHooks::default()).await
}

pub async fn spawn_app_with_hooks(
    config: Config,
    db: Arc<TestDatabase>,
    hooks: CacheHooks,
) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        shopnow::observability::init_logging(LogFormat::Text);
    }
    let prefix = config.cache.prefix.clone();
    let app = Application::build_with_hooks(config, hooks)
        .await
        .expect("app builds");
    let catalog = app.catalog();
    let address = format!("http://{}", app.local_addr());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stop_rx.await;
    }));
    let pool = PgPool::connect(&db.url).await.expect("test pool");
    TestApp {
        address,
        client: Client::new(),
        db,
        pool,
        catalog,
        prefix,
        stop: Some(stop_tx),
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Starts the instance's graceful shutdown and returns the server task to await.
    pub fn begin_shutdown(&mut self) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.take().expect("server still running")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// Creates a product with `stock` and returns its JSON.
    pub async fn create_product(&self, sku: &str, stock: i64) -> Value {
        let response = self
            .admin(reqwest::Method::POST, "/v1/products")
            .json(&json!({"sku": sku, "name": format!("Product {sku}"), "price_cents": 250, "stock": stock}))
            .send()
            .await
            .expect("POST /v1/products");
        assert_eq!(response.status(), StatusCode::CREATED, "create {sku}");
        response.json().await.unwrap()
    }

    pub async fn product(&self, id: i64) -> Value {
        let response = self.get(&format!("/v1/products/{id}")).await;
        assert_eq!(response.status(), StatusCode::OK, "GET product {id}");
        response.json().await.unwrap()
    }

    pub async fn order(&self, items: &[(i64, i64)], key: Option<&str>) -> Response {
        let items: Vec<Value> = items
            .iter()
            .map(|(id, q)| json!({"product_id": id, "quantity": q}))
            .collect();
        let mut request = self
            .client
            .post(self.url("/v1/orders"))
            .json(&json!({ "items": items }));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("POST /v1/orders")
    }

    /// Adjusts a product's stock through the API; returns the product it answers.
    pub async fn adjust(&self, id: i64, delta: i64) -> Value {
        let response = self
            .admin(
                reqwest::Method::POST,
                &format!("/v1/products/{id}/stock/adjustments"),
            )
            .json(&json!({ "delta": delta }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "adjust {id} by {delta}");
        response.json().await.unwrap()
    }

    /// Seeds demo products 1..=count straight into Postgres (nothing cached).
    pub async fn seed(&self, count: i64) {
        let mut conn = self.pool.acquire().await.unwrap();
        shopnow::db::products::seed_demo(&mut conn, count)
            .await
            .unwrap();
    }

    /// Inserts a product straight into Postgres, so that no write-through has cached it.
    pub async fn insert_cold_product(&self, sku: &str, stock: i64) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO products (sku, name, price_cents, currency, stock) \
             VALUES ($1, $1, 100, 'USD', $2) RETURNING id",
        )
        .bind(sku)
        .bind(stock)
        .fetch_one(&self.pool)
        .await
        .expect("insert product")
    }

    /// Stock and version straight from Postgres.
    pub async fn stored(&self, id: i64) -> (i64, i64) {
        sqlx::query_as("SELECT stock, version FROM products WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .expect("product row")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Asserts the JSON error shape and code of a response, and returns its body.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

/// A `shopnow` process (the binary under test), for tests that kill an instance.
pub struct ProcessInstance {
    pub child: std::process::Child,
    pub address: String,
}

impl ProcessInstance {
    /// Starts `shopnow serve` with `config`'s database, Redis, strategy and prefix, plus `env`.
    pub fn start(config: &Config, env: &[(&str, &str)]) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shopnow"))
            .arg("serve")
            .env("DATABASE_URL", &config.database_url)
            .env("REDIS_URL", config.redis.urls.join(","))
            .env("SHOPNOW_CACHE_STRATEGY", config.cache.strategy.as_str())
            .env("SHOPNOW_CACHE_PREFIX", &config.cache.prefix)
            .env("SHOPNOW_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("SHOPNOW_LISTEN", "127.0.0.1:0")
            .env("SHOPNOW_LOG_FORMAT", "json")
            .env("SHOPNOW_SAMPLER_RATE", "0")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start shopnow");
        // The bound address is logged once the listener is up: wait for that line.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(log) = serde_json::from_str::<Value>(&line) {
                    if let Some(address) = log["address"].as_str() {
                        let _ = tx.send(address.to_string());
                    }
                }
            }
        });
        let address = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("shopnow logs its address within 20 s");
        Self {
            child,
            address: format!("http://{address}"),
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for ProcessInstance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `condition` every 20 ms until it holds or `limit` passes; returns the time it took.
/// For conditions that no event announces (a background repair), never for synchronisation
/// between the test's own steps.
pub async fn eventually<F, Fut>(
    limit: std::time::Duration,
    mut condition: F,
) -> Option<std::time::Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if condition().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    None
}
