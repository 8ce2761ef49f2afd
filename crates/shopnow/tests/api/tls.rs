//! TLS to Redis (`rediss://`, as managed Redis requires) and to Postgres (`sslmode`): each Redis
//! here is a `redis-server` that speaks TLS only, with certificates `openssl` made for the test.

use std::{path::Path, sync::Arc, time::Duration};

use reqwest::StatusCode;
use serde_json::Value;
use shopnow::Product;
use testkit::{RedisCluster, RedisServer, ReplicatedRedis, TestCertificates};

use crate::{
    cache::stored_version,
    helpers::{eventually, ok, start_process, TestApp},
};

/// An ACL user of the test's TLS Redis, as managed Redis hands out.
const USER: &str = "shop";
const PASSWORD: &str = "tls-test-password-d41d8cd9";

fn acl_user_args() -> Vec<String> {
    let rule = format!("{USER} on >{PASSWORD} ~* &* +@all");
    std::iter::once("--user".to_string())
        .chain(rule.split(' ').map(String::from))
        .collect()
}

/// `rediss://` for `server` with the ACL user's credentials.
fn url_with_credentials(server: &RedisServer) -> String {
    server
        .url()
        .replace("rediss://", &format!("rediss://{USER}:{PASSWORD}@"))
}

fn start_tls_redis(certificates: &Arc<TestCertificates>, extra: &[&str]) -> RedisServer {
    let mut args = acl_user_args();
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    RedisServer::start_tls(certificates, &args)
}

/// A cached read, a publish, a publish by the relay of a change made outside the API: all hit
/// the cache at the newest version, over TLS.
async fn assert_served_from_the_cache(
    app: &TestApp,
    redis: &mut redis::aio::MultiplexedConnection,
) {
    let id = app.create_product("TLS-1", 10).await.id;
    let path = format!("/v1/products/{id}");
    // The first read fills the copy (a publish never writes into an empty key), the next hit.
    // With a replica, the create's publish may not be confirmed in time while the link is new:
    // its change is then handed off, and no instance serves the product's copy until the relay
    // publishes it again (`trust`), a second or so.
    let first = app.get(&path).await;
    assert_eq!(first.headers()["x-cache"], "miss");
    assert_eq!(ok::<Product>(first, StatusCode::OK).await.version, 1);
    let hit = eventually(Duration::from_secs(5), || async {
        let response = app.get(&path).await;
        let hit = response.headers()["x-cache"] == "hit";
        assert_eq!(ok::<Product>(response, StatusCode::OK).await.version, 1);
        hit
    })
    .await;
    assert!(hit.is_some(), "the copy is served from Redis");

    assert_eq!(app.adjust(id, -1).await.version, 2);
    let copy: Option<Vec<u8>> = redis::AsyncCommands::get(redis, app.copy_key(id))
        .await
        .unwrap();
    assert_eq!(stored_version(copy), Some(2), "the publish reached Redis");
    let response = app.get(&path).await;
    assert_eq!(response.headers()["x-cache"], "hit");
    assert_eq!(ok::<Product>(response, StatusCode::OK).await.stock, 9);

    // Outside the API: only the relay can publish this one.
    sqlx::query("UPDATE products SET stock = 3 WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let relayed = eventually(Duration::from_secs(5), || async {
        let response = app.get(&path).await;
        let hit = response.headers()["x-cache"] == "hit";
        hit && response.json::<Product>().await.unwrap().version == 3
    })
    .await;
    assert!(relayed.is_some(), "the relay published version 3 over TLS");
}

#[tokio::test]
async fn a_tls_redis_with_an_acl_user_serves_reads_publishes_and_the_relay() {
    let certificates = Arc::new(TestCertificates::generate());
    let server = start_tls_redis(&certificates, &[]);
    let app = TestApp::builder()
        .versioned(&url_with_credentials(&server))
        .with_config(|c| c.redis.tls.ca_file = Some(certificates.ca_file()))
        .spawn()
        .await;
    let mut redis = server.connection().await;
    assert_served_from_the_cache(&app, &mut redis).await;
    assert_eq!(
        ok::<Value>(app.get("/readyz").await, StatusCode::OK).await["cache"],
        "ok"
    );

    // The instance logged in as the URL's user, not as `default`.
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(
        clients
            .lines()
            .any(|l| l.contains(&format!("user={USER} "))),
        "{clients}"
    );
}

/// Providers that require mutual TLS: without the client certificate the handshake fails; with
/// `SHOPNOW_REDIS_TLS_CERT_FILE` and `_KEY_FILE` it succeeds.
#[tokio::test]
async fn a_redis_requiring_client_certificates_accepts_the_configured_one() {
    let certificates = Arc::new(TestCertificates::generate());
    let server = start_tls_redis(&certificates, &["--tls-auth-clients", "yes"]);
    let without = TestApp::builder()
        .versioned(&url_with_credentials(&server))
        .with_config(|c| c.redis.tls.ca_file = Some(certificates.ca_file()))
        .spawn()
        .await;
    let readiness: Value = ok(without.get("/readyz").await, StatusCode::OK).await;
    assert_eq!(readiness["cache"], "degraded", "no client certificate");

    let with = without
        .sibling()
        .with_config(|c| {
            c.redis.tls.client_cert_file = Some(certificates.client_cert_file());
            c.redis.tls.client_key_file = Some(certificates.client_key_file());
        })
        .spawn()
        .await;
    assert_served_from_the_cache(&with, &mut server.connection().await).await;
}

/// The wrong authority: every connection is refused, the log says why (once, without the
/// password), and the instance goes on from Postgres.
#[tokio::test]
async fn a_redis_certificate_from_another_authority_is_refused_and_reads_go_to_postgres() {
    let certificates = Arc::new(TestCertificates::generate());
    let server = start_tls_redis(&certificates, &[]);
    let app = TestApp::builder()
        .versioned(&url_with_credentials(&server))
        .spawn()
        .await;
    let other_ca = certificates.other_ca_file();
    let instance = start_process(
        &app.config,
        &[(
            "SHOPNOW_REDIS_TLS_CA_FILE",
            other_ca.to_str().expect("a UTF-8 temporary path"),
        )],
    );
    let client = reqwest::Client::new();
    let created: Product = ok(
        client
            .post(format!("{}/v1/products", instance.url()))
            .bearer_auth(crate::helpers::ADMIN_TOKEN)
            .json(&serde_json::json!({
                "sku": "TLS-REFUSED", "name": "x", "price_cents": 100, "currency": "USD", "stock": 4
            }))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    for _ in 0..3 {
        let response = client
            .get(format!("{}/v1/products/{}", instance.url(), created.id))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-cache"], "bypass");
        assert_eq!(ok::<Product>(response, StatusCode::OK).await.stock, 4);
    }
    let readiness: Value = ok(
        client
            .get(format!("{}/readyz", instance.url()))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(readiness["cache"], "degraded");
    // Nothing reached Redis: the publish waits in the outbox for a Redis it can trust.
    let keys: i64 = redis::cmd("DBSIZE")
        .query_async(&mut server.connection().await)
        .await
        .unwrap();
    assert_eq!(keys, 0);
    assert!(app.outbox_rows().await > 0);

    let refused = eventually(Duration::from_secs(5), || async {
        instance.log().iter().any(|l| {
            l["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("redis does not answer")
        })
    })
    .await;
    assert!(
        refused.is_some(),
        "the refusal is logged: {:?}",
        instance.log()
    );
    let log: Vec<String> = instance.log().iter().map(Value::to_string).collect();
    let reasons: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("redis does not answer"))
        .collect();
    // Once per kind of reason, not per check: a loaded machine may turn the first refusal
    // into a timeout, and the certificate is named at the next check.
    let naming_the_certificate = eventually(Duration::from_secs(12), || async {
        instance.log().iter().any(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("redis does not answer"))
                && l["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("UnknownIssuer") || e.contains("certificate"))
        })
    })
    .await;
    assert!(
        naming_the_certificate.is_some(),
        "the reason names the certificate: {reasons:?}"
    );
    let log: Vec<String> = instance.log().iter().map(Value::to_string).collect();
    let reasons = log
        .iter()
        .filter(|l| l.contains("redis does not answer"))
        .count();
    assert!(
        reasons <= 2,
        "logged once per kind of reason, not per check: {log:?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("cache publish failed")),
        "nor once per publish: {log:?}"
    );
    assert!(
        !log.iter().any(|l| l.contains(PASSWORD)),
        "the password never appears in the log"
    );
}

/// A missing or empty CA file stops the start with the variable's name, not every connection
/// later with a handshake error.
#[tokio::test]
async fn an_unusable_ca_file_stops_the_start_and_names_the_variable() {
    let certificates = TestCertificates::generate();
    let empty = certificates.ca_file().with_file_name("empty.pem");
    std::fs::write(&empty, "").unwrap();
    for ca_file in [empty.as_path(), Path::new("/nonexistent/ca.pem")] {
        let built = TestApp::builder()
            .versioned("rediss://127.0.0.1:1")
            .with_config(|c| c.redis.tls.ca_file = Some(ca_file.to_path_buf()))
            .try_spawn()
            .await;
        let error = format!("{:#}", built.err().expect("the start fails"));
        assert!(error.contains("SHOPNOW_REDIS_TLS_CA_FILE"), "{error}");
    }
}

#[tokio::test]
async fn a_tls_primary_with_a_replica_confirms_publishes() {
    let certificates = Arc::new(TestCertificates::generate());
    let redis = ReplicatedRedis::start_tls(&certificates).await;
    assert!(redis.url().starts_with("rediss://"));
    let app = TestApp::builder()
        .versioned(&redis.url())
        .with_config(|c| {
            c.redis.tls.ca_file = Some(certificates.ca_file());
            c.redis.replicas = 1;
        })
        .spawn()
        .await;
    assert_served_from_the_cache(&app, &mut redis.primary_connection().await).await;
    // Confirmed by the replica (WAIT over the TLS replication link): no row left to repair.
    let confirmed = eventually(Duration::from_secs(5), || async {
        app.outbox_rows().await == 0
    })
    .await;
    assert!(confirmed.is_some(), "the replica confirmed every publish");
}

#[tokio::test]
async fn a_tls_redis_cluster_serves_reads_and_publishes() {
    let certificates = Arc::new(TestCertificates::generate());
    let cluster = RedisCluster::start_tls(&certificates).await;
    let app = TestApp::builder()
        .versioned("rediss://unused")
        .with_config(|c| {
            c.redis.urls = cluster.urls();
            c.redis.cluster = true;
            c.redis.tls.ca_file = Some(certificates.ca_file());
        })
        .spawn()
        .await;
    // Enough products that their hash tags land on every master.
    for n in 0..6 {
        let id = app.create_product(&format!("TLS-CLUSTER-{n}"), 20).await.id;
        assert_eq!(app.product(id).await.version, 1, "filled");
        assert_eq!(app.adjust(id, -2).await.version, 2);
        let response = app.get(&format!("/v1/products/{id}")).await;
        assert_eq!(response.headers()["x-cache"], "hit");
        assert_eq!(ok::<Product>(response, StatusCode::OK).await.stock, 18);
    }
    assert_eq!(
        ok::<Value>(app.get("/readyz").await, StatusCode::OK).await["cache"],
        "ok"
    );
}

/// `sslmode=require` in DATABASE_URL: every connection of the instance is encrypted. The
/// machine's Postgres serves TLS with its own certificate (Debian's default, snakeoil), which no
/// authority signed, so `verify-full` cannot be shown here; the README says how to use it.
#[tokio::test]
async fn postgres_with_sslmode_require_encrypts_every_connection() {
    let db = crate::helpers::test_database();
    let app = TestApp::builder()
        .database(db.clone())
        .with_config(|c| c.database.url = format!("{}?sslmode=require", db.url))
        .spawn()
        .await;
    let server_ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        server_ssl, "on",
        "scripts/setup leaves Postgres serving TLS"
    );
    app.create_product("PG-TLS-1", 1).await;
    // The instance's sessions are named `shopnow`; the test's own pool is not.
    let connections: Vec<(bool,)> = sqlx::query_as(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.datname = current_database() AND a.application_name = 'shopnow'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(!connections.is_empty(), "the instance's sessions are named");
    assert!(
        connections.iter().all(|(ssl,)| *ssl),
        "every session of the instance is encrypted: {connections:?}"
    );
}
