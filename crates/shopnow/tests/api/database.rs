//! A database that cannot serve for a while (maintenance, a failover to a standby, a full disk,
//! a restart): every request that needs it answers 503 `unavailable` with `Retry-After`, never
//! 500, readiness says so, and an instance that starts meanwhile waits for it.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use testkit::TestDatabase;

use crate::helpers::{assert_error, eventually, TestApp};

/// A connection to the server's maintenance database, for statements about a test database.
async fn maintenance() -> PgConnection {
    let url = format!("{}/postgres", testkit::postgres_server());
    PgConnection::connect(&url)
        .await
        .expect("maintenance connection")
}

/// Runs `statement` about database `name`, then ends every session on it, so that the
/// instance's next connections meet the new state.
async fn alter_and_reconnect(name: &str, statement: &str) {
    let mut admin = maintenance().await;
    sqlx::query(&statement.replace("{db}", name))
        .execute(&mut admin)
        .await
        .expect(statement);
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(name)
    .execute(&mut admin)
    .await
    .unwrap();
}

async fn assert_unavailable(response: reqwest::Response) {
    let retry_after = response.headers().get("retry-after").cloned();
    assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    assert_eq!(retry_after.unwrap(), "1");
}

#[tokio::test]
async fn a_database_that_refuses_connections_answers_503_with_retry_after() {
    let app = TestApp::builder().spawn().await;
    let id = app.create_product("REFUSED-1", 10).await.id;
    let order = app.placed_order(&[(id, 1)]).await;

    // Maintenance: the database accepts no new session (SQLSTATE 55000).
    alter_and_reconnect(&app.db.name, "ALTER DATABASE {db} ALLOW_CONNECTIONS false").await;
    for _ in 0..3 {
        assert_unavailable(app.get("/v1/products").await).await;
        assert_unavailable(app.get(&format!("/v1/products/{id}")).await).await;
        assert_unavailable(app.order(&[(id, 1)], None).await).await;
        assert_unavailable(
            app.read_order(order.order.id, Some(&order.access_token))
                .await,
        )
        .await;
        let write = app
            .admin(Method::PUT, &format!("/v1/products/{id}/stock"))
            .json(&json!({"stock": 5}))
            .send()
            .await
            .unwrap();
        assert_unavailable(write).await;
    }
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.headers()["retry-after"], "1");
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["database"], "down");

    alter_and_reconnect(&app.db.name, "ALTER DATABASE {db} ALLOW_CONNECTIONS true").await;
    let back = eventually(Duration::from_secs(10), || async {
        app.get("/v1/products").await.status() == StatusCode::OK
    })
    .await;
    assert!(
        back.is_some(),
        "the instance serves again once the database does"
    );
    assert_eq!(app.stored(id).await.0, 9, "nothing was changed meanwhile");
}

/// What a failover to a standby looks like before the endpoint moves: sessions are read-only
/// (SQLSTATE 25006). Writes answer 503; reads go on.
#[tokio::test]
async fn a_read_only_database_answers_writes_with_503_and_reads_go_on() {
    let app = TestApp::builder().spawn().await;
    let id = app.create_product("READONLY-1", 10).await.id;
    alter_and_reconnect(
        &app.db.name,
        "ALTER DATABASE {db} SET default_transaction_read_only = on",
    )
    .await;
    for _ in 0..3 {
        assert_unavailable(app.order(&[(id, 1)], None).await).await;
        assert_eq!(app.product(id).await.stock, 10);
    }
    alter_and_reconnect(
        &app.db.name,
        "ALTER DATABASE {db} RESET default_transaction_read_only",
    )
    .await;
    let back = eventually(Duration::from_secs(10), || async {
        app.order(&[(id, 1)], None).await.status() == StatusCode::CREATED
    })
    .await;
    assert!(back.is_some());
}

/// Containers start in any order: an instance whose database is not accepting connections yet
/// waits for it (within `SHOPNOW_DB_STARTUP_TIMEOUT_SECS`) instead of exiting.
#[tokio::test]
async fn an_instance_started_while_the_database_refuses_waits_for_it() {
    let db = std::sync::Arc::new(TestDatabase::create("shopnow_test").await.unwrap());
    alter_and_reconnect(&db.name, "ALTER DATABASE {db} ALLOW_CONNECTIONS false").await;

    // Without patience, the start fails at once.
    let impatient = TestApp::builder()
        .database(db.clone())
        .with_config(|c| c.database.startup_timeout = Duration::ZERO)
        .try_spawn()
        .await;
    assert!(impatient.is_err(), "a refused start with no patience fails");

    let patient = tokio::spawn(TestApp::builder().database(db.clone()).try_spawn());
    // Still trying a second later, not failed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !patient.is_finished(),
        "the instance gave up while the database refused"
    );
    alter_and_reconnect(&db.name, "ALTER DATABASE {db} ALLOW_CONNECTIONS true").await;
    let app = tokio::time::timeout(Duration::from_secs(10), patient)
        .await
        .expect("the instance starts once the database accepts connections")
        .unwrap()
        .expect("and builds");
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
}
