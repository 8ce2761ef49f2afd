//! Test harness: a fresh database per test and real instances of the app on free ports, built
//! with one builder: `TestApp::builder().versioned(&redis_url).spawn().await`.

use std::{future::Future, sync::Arc, time::Duration};

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use shopnow::{
    Application, CacheStrategy, Catalog, Config, Hooks, LogFormat, OrderReceipt, Product,
    ProductKeys,
};
use sqlx::PgPool;
use testkit::TestDatabase;
use tokio::sync::oneshot;

pub(crate) const ADMIN_TOKEN: &str = "test-admin-token";

/// The shared Redis of the machine, for tests that neither flush, restart nor count commands.
pub(crate) const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

/// A key prefix no other test uses.
pub(crate) fn unique_prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

/// A database of the test's own, shared by the instances that hold it.
pub(crate) fn test_database() -> Arc<TestDatabase> {
    Arc::new(TestDatabase::new("shopnow_test"))
}

/// One running instance and a client for it.
pub(crate) struct TestApp {
    pub address: String,
    pub client: Client,
    /// Keeps the database alive while the app runs; other instances may share it.
    pub db: Arc<TestDatabase>,
    pub pool: PgPool,
    /// The instance's own catalog, for counters and for writes that skip HTTP.
    pub catalog: Catalog,
    /// The instance's configuration (its database, Redis and key prefix).
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// How to build a `TestApp`. By default: a fresh database, port 0, the `none` strategy, the
/// admin token `ADMIN_TOKEN`, no sampler (it repairs what it finds, and tests of the naive
/// strategies want their bugs intact).
pub(crate) struct TestAppBuilder {
    config: Config,
    db: Arc<TestDatabase>,
    hooks: Hooks,
}

impl TestApp {
    pub(crate) fn builder() -> TestAppBuilder {
        let db = test_database();
        let mut config = Config::from_lookup(|_| None).expect("defaults are valid");
        config.database.url = db.url.clone();
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.admin_token = Some(ADMIN_TOKEN.to_string());
        config.cache.strategy = CacheStrategy::None;
        config.cache.prefix = unique_prefix();
        config.log_format = LogFormat::Text;
        config.sampler_rate = 0;
        // Every test sends from 127.0.0.1; the ones about rate limits set their own.
        config.rate_limit.per_minute = 0;
        TestAppBuilder {
            config,
            db,
            hooks: Hooks::default(),
        }
    }

    /// A builder for another instance of the same deployment: same database, Redis, strategy
    /// and key prefix; no hooks and no faults.
    pub(crate) fn sibling(&self) -> TestAppBuilder {
        let mut config = self.config.clone();
        config.faults = Default::default();
        TestAppBuilder {
            config,
            db: self.db.clone(),
            hooks: Hooks::default(),
        }
    }
}

impl TestAppBuilder {
    /// The `versioned` strategy on the Redis at `redis_url`.
    pub(crate) fn versioned(self, redis_url: &str) -> Self {
        self.strategy(CacheStrategy::Versioned, redis_url)
    }

    pub(crate) fn strategy(mut self, strategy: CacheStrategy, redis_url: &str) -> Self {
        self.config.cache.strategy = strategy;
        self.config.redis.urls = vec![redis_url.to_string()];
        self
    }

    /// The database this instance will use, to share with others.
    pub(crate) fn shared_database(&self) -> Arc<TestDatabase> {
        self.db.clone()
    }

    /// Use `db` (shared with other instances) instead of a fresh one.
    pub(crate) fn database(mut self, db: Arc<TestDatabase>) -> Self {
        self.config.database.url = db.url.clone();
        self.db = db;
        self
    }

    pub(crate) fn hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// Any other setting.
    pub(crate) fn with_config(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(&mut self.config);
        self
    }

    pub(crate) async fn spawn(self) -> TestApp {
        self.try_spawn().await.expect("app builds")
    }

    pub(crate) async fn try_spawn(self) -> anyhow::Result<TestApp> {
        if std::env::var_os("TEST_LOG").is_some() {
            shopnow::init_logging(LogFormat::Text);
        }
        let Self { config, db, hooks } = self;
        let app = Application::build(config.clone(), hooks).await?;
        let catalog = app.catalog();
        let address = format!("http://{}", app.local_addr());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = stop_rx.await;
        }));
        let pool = PgPool::connect(&db.url).await?;
        Ok(TestApp {
            address,
            client: Client::new(),
            db,
            pool,
            catalog,
            config,
            stop: Some(stop_tx),
            server: Some(server),
        })
    }
}

impl TestApp {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The instance's key prefix in Redis.
    pub(crate) fn prefix(&self) -> &str {
        &self.config.cache.prefix
    }

    /// The Redis key of product `id`'s versioned copy.
    pub(crate) fn copy_key(&self, id: i64) -> String {
        ProductKeys::new(self.prefix(), id).current()
    }

    /// Starts the instance's graceful shutdown and returns the server task to await.
    pub(crate) fn begin_shutdown(&mut self) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.take().expect("server still running")
    }

    /// The client every helper sends with.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub(crate) fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// Creates a product with `stock` at 250 cents.
    pub(crate) async fn create_product(&self, sku: &str, stock: i64) -> Product {
        let response = self
            .admin(Method::POST, "/v1/products")
            .json(&json!({"sku": sku, "name": format!("Product {sku}"), "price_cents": 250, "stock": stock}))
            .send()
            .await
            .expect("POST /v1/products");
        ok(response, StatusCode::CREATED).await
    }

    pub(crate) async fn product(&self, id: i64) -> Product {
        ok(
            self.get(&format!("/v1/products/{id}")).await,
            StatusCode::OK,
        )
        .await
    }

    /// An admin write that answers 200 with a product.
    pub(crate) async fn change(&self, method: Method, path: &str, body: Value) -> Product {
        let response = self.admin(method, path).json(&body).send().await.unwrap();
        ok(response, StatusCode::OK).await
    }

    /// Adjusts a product's stock through the API; returns the product it answers.
    pub(crate) async fn adjust(&self, id: i64, delta: i64) -> Product {
        self.change(
            Method::POST,
            &format!("/v1/products/{id}/stock/adjustments"),
            json!({ "delta": delta }),
        )
        .await
    }

    pub(crate) async fn delete_product(&self, id: i64) -> Response {
        self.admin(Method::DELETE, &format!("/v1/products/{id}"))
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn order(&self, items: &[(i64, i64)], key: Option<&str>) -> Response {
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

    /// Places an order that must succeed; returns it with its access token.
    pub(crate) async fn placed_order(&self, items: &[(i64, i64)]) -> OrderReceipt {
        ok(self.order(items, None).await, StatusCode::CREATED).await
    }

    /// `GET /v1/orders/{id}` with `token` as the bearer, if any.
    pub(crate) async fn read_order(&self, id: i64, token: Option<&str>) -> Response {
        let mut request = self.client.get(self.url(&format!("/v1/orders/{id}")));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// Seeds demo products 1..=count straight into Postgres (nothing cached).
    pub(crate) async fn seed(&self, count: i64) {
        self.catalog.seed_demo(count).await.unwrap();
    }

    /// Inserts a product straight into Postgres, so that no write-through has cached it.
    pub(crate) async fn insert_cold_product(&self, sku: &str, stock: i64) -> i64 {
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
    pub(crate) async fn stored(&self, id: i64) -> (i64, i64) {
        sqlx::query_as("SELECT stock, version FROM products WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .expect("product row")
    }

    /// Rows in the cache outbox.
    pub(crate) async fn outbox_rows(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM cache_outbox")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The body of a response that must have `status`, as `T`.
pub(crate) async fn ok<T: DeserializeOwned>(response: Response, status: StatusCode) -> T {
    let got = response.status();
    let url = response.url().clone();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{url}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"))
}

/// Asserts the JSON error shape and code of a response, and returns its body.
pub(crate) async fn assert_error(response: Response, status: StatusCode, code: &str) -> Value {
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

/// Polls `condition` every 20 ms until it holds or `limit` passes; returns the time it took.
/// For conditions that no event announces (a background repair), never for synchronisation
/// between the test's own steps.
pub(crate) async fn eventually<F, Fut>(limit: Duration, mut condition: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if condition().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// The `shopnow` binary under test, as a process of its own (for tests that kill it).
pub(crate) fn start_process(config: &Config, env: &[(&str, &str)]) -> testkit::ShopnowProcess {
    start_limited_process(config, env, None)
}

/// `start_process`, with the process's open-file limit set to `open_files`.
pub(crate) fn start_limited_process(
    config: &Config,
    env: &[(&str, &str)],
    open_files: Option<u32>,
) -> testkit::ShopnowProcess {
    let redis_urls = config.redis.urls.join(",");
    let mut all: Vec<(&str, &str)> = vec![
        ("DATABASE_URL", &config.database.url),
        ("REDIS_URL", &redis_urls),
        ("SHOPNOW_CACHE_STRATEGY", config.cache.strategy.as_str()),
        ("SHOPNOW_CACHE_PREFIX", &config.cache.prefix),
        ("SHOPNOW_ADMIN_TOKEN", ADMIN_TOKEN),
        ("SHOPNOW_LISTEN", "127.0.0.1:0"),
        ("SHOPNOW_SAMPLER_RATE", "0"),
    ];
    all.extend_from_slice(env);
    testkit::ShopnowProcess::start_limited(
        env!("CARGO_BIN_EXE_shopnow").as_ref(),
        &[],
        &all,
        open_files,
    )
    .expect("shopnow starts")
}
