//! One locked or hot product, or a database that goes away, must not take the instance down.

use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::StatusCode;
use testkit::TcpProxy;

use crate::helpers::{assert_error, TestApp};

#[tokio::test]
async fn a_locked_product_stalls_only_its_own_writes_and_readiness_stays_up() {
    let app = TestApp::builder()
        .with_config(|c| c.database.lock_timeout = Duration::from_millis(1_000))
        .spawn()
        .await;
    let locked = app.create_product("LOCKED-1", 1_000).await.id;
    let free = app.create_product("FREE-2", 1_000).await.id;

    // Another client (an admin's psql, an ERP sync) holds product 1's row for the whole test.
    let mut holder = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM products WHERE id = $1 FOR UPDATE")
        .bind(locked)
        .execute(&mut *holder)
        .await
        .unwrap();

    let started = Instant::now();
    let (locked_item, free_item) = ([(locked, 1)], [(free, 1)]);
    let for_locked = join_all((0..100).map(|_| app.order(&locked_item, None)));
    let for_free = join_all((0..40).map(|_| app.order(&free_item, None)));
    let lists = join_all((0..20).map(|_| app.get("/v1/products?limit=10")));
    let readiness = join_all((0..10).map(|_| app.get("/readyz")));
    let (for_locked, for_free, lists, readiness) =
        tokio::join!(for_locked, for_free, lists, readiness);
    let took = started.elapsed();

    for response in for_free {
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "orders of product 2 go on"
        );
    }
    for response in lists {
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "the product list goes on"
        );
    }
    for response in readiness {
        assert_eq!(response.status(), StatusCode::OK, "readiness stays up");
    }
    for response in for_locked {
        assert_eq!(response.headers()["retry-after"], "1");
        assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "busy").await;
    }
    assert!(took < Duration::from_secs(5), "answered in {took:?}");

    holder.rollback().await.unwrap();
    assert_eq!(
        app.order(&[(locked, 1)], None).await.status(),
        StatusCode::CREATED,
        "the product takes orders again once its row is free"
    );
    assert_eq!(
        app.stored(locked).await.0,
        999,
        "only that order took stock"
    );
}

#[tokio::test]
async fn an_unreachable_database_answers_503_unavailable_and_the_instance_recovers() {
    let postgres: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let proxy = TcpProxy::start(postgres);
    let app = TestApp::builder()
        .with_config(|c| {
            c.database.url = c
                .database
                .url
                .replace("127.0.0.1:5432", &proxy.address().to_string());
            c.database.acquire_timeout = Duration::from_millis(500);
        })
        .spawn()
        .await;
    let id = app.insert_cold_product("AWAY-1", 5).await;
    assert_eq!(
        app.get("/v1/products?limit=1").await.status(),
        StatusCode::OK
    );

    proxy.reject();
    for path in [
        "/v1/products?limit=1",
        &format!("/v1/products/{id}"),
        "/v1/orders/1",
    ] {
        let response = app
            .client
            .get(app.url(path))
            .bearer_auth(crate::helpers::ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["retry-after"], "1", "{path}");
        assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    }
    let order = app.order(&[(id, 1)], None).await;
    assert_error(order, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    assert_eq!(
        app.get("/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready without its database"
    );

    proxy.forward();
    let recovered = crate::helpers::eventually(Duration::from_secs(5), || async {
        app.get("/v1/products?limit=1").await.status() == StatusCode::OK
    })
    .await;
    assert!(
        recovered.is_some(),
        "serving again once the database is back"
    );
    assert_eq!(
        app.stored(id).await,
        (5, 1),
        "nothing changed while it was away"
    );
}
