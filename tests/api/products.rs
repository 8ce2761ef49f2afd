use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app, TestApp};

async fn send(app: &TestApp, method: Method, path: &str, body: Value) -> Value {
    let response = app.admin(method, path).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn every_change_of_a_product_raises_its_version_by_one() {
    let app = spawn_app().await;
    let created = app.create_product("VER-1", 10).await;
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["version"], 1);
    let path = format!("/v1/products/{id}");

    let patched = send(&app, Method::PATCH, &path, json!({"price_cents": 999})).await;
    assert_eq!(
        (patched["version"].as_i64(), patched["price_cents"].as_i64()),
        (Some(2), Some(999))
    );

    let set = send(
        &app,
        Method::PUT,
        &format!("{path}/stock"),
        json!({"stock": 7}),
    )
    .await;
    assert_eq!(
        (set["version"].as_i64(), set["stock"].as_i64()),
        (Some(3), Some(7))
    );

    let adjusted = send(
        &app,
        Method::POST,
        &format!("{path}/stock/adjustments"),
        json!({"delta": -2}),
    )
    .await;
    assert_eq!(
        (adjusted["version"].as_i64(), adjusted["stock"].as_i64()),
        (Some(4), Some(5))
    );

    assert_eq!(
        app.order(&[(id, 1)], None).await.status(),
        StatusCode::CREATED
    );
    let read = app.product(id).await;
    assert_eq!(
        (read["version"].as_i64(), read["stock"].as_i64()),
        (Some(5), Some(4))
    );

    let deleted = app.admin(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.stored(id).await,
        (4, 6),
        "the deletion is a version too"
    );
}

#[tokio::test]
async fn a_deleted_product_reads_as_not_found_and_its_orders_remain() {
    let app = spawn_app().await;
    let id = app.create_product("DEL-1", 5).await["id"].as_i64().unwrap();
    let order: Value = app.order(&[(id, 1)], None).await.json().await.unwrap();
    let path = format!("/v1/products/{id}");

    assert_eq!(
        app.admin(Method::DELETE, &path)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_error(app.get(&path).await, StatusCode::NOT_FOUND, "not_found").await;
    let again = app.admin(Method::DELETE, &path).send().await.unwrap();
    assert_error(again, StatusCode::NOT_FOUND, "not_found").await;
    let adjust = app
        .admin(Method::POST, &format!("{path}/stock/adjustments"))
        .json(&json!({"delta": 1}))
        .send()
        .await
        .unwrap();
    assert_error(adjust, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(
        app.order(&[(id, 1)], None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let kept = app.get(&format!("/v1/orders/{}", order["id"])).await;
    assert_eq!(kept.status(), StatusCode::OK);

    // The SKU of a deleted product can be used again.
    app.create_product("DEL-1", 1).await;
}

#[tokio::test]
async fn a_product_read_carries_etag_and_answers_304_when_unchanged() {
    let app = spawn_app().await;
    let id = app.create_product("ETAG-1", 3).await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/v1/products/{id}");

    let response = app.get(&path).await;
    assert_eq!(response.headers()["etag"], "\"1\"");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    assert_eq!(response.headers()["x-cache"], "bypass");

    let not_modified = app
        .client
        .get(app.url(&path))
        .header("If-None-Match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.headers()["etag"], "\"1\"");

    send(
        &app,
        Method::POST,
        &format!("{path}/stock/adjustments"),
        json!({"delta": 1}),
    )
    .await;
    let changed = app
        .client
        .get(app.url(&path))
        .header("If-None-Match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(changed.headers()["etag"], "\"2\"");
}

#[tokio::test]
async fn adjustments_below_zero_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let id = app.create_product("ADJ-1", 2).await["id"].as_i64().unwrap();
    let response = app
        .admin(
            Method::POST,
            &format!("/v1/products/{id}/stock/adjustments"),
        )
        .json(&json!({"delta": -3}))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::CONFLICT, "insufficient_stock").await;
    assert_eq!(app.stored(id).await, (2, 1));
}

#[tokio::test]
async fn the_product_list_pages_by_id() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            app.create_product(&format!("PAGE-{n}"), 1).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    app.admin(Method::DELETE, &format!("/v1/products/{}", ids[1]))
        .send()
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut path = "/v1/products?limit=2".to_string();
    loop {
        let page: Value = app.get(&path).await.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|p| p["id"].as_i64().unwrap()));
        match page["next"].as_i64() {
            Some(next) => path = format!("/v1/products?limit=2&after={next}"),
            None => break,
        }
        assert!(seen.len() < 10, "pagination must end");
    }
    let live: Vec<i64> = ids.iter().copied().filter(|&id| id != ids[1]).collect();
    assert_eq!(seen, live);

    for bad in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "after=-1",
        "colour=red",
    ] {
        let response = app.get(&format!("/v1/products?{bad}")).await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    }
}

#[tokio::test]
async fn seeding_twice_adds_nothing() {
    let app = spawn_app().await;
    let mut conn = app.pool.acquire().await.unwrap();
    let first = shopnow::db::products::seed_demo(&mut conn, 25)
        .await
        .unwrap();
    let second = shopnow::db::products::seed_demo(&mut conn, 25)
        .await
        .unwrap();
    assert_eq!((first, second), (25, 0));
    let page: Value = app
        .get("/v1/products?limit=200")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 25);
}

#[tokio::test]
async fn a_second_instance_on_the_same_database_sees_every_write() {
    let first = spawn_app().await;
    let second =
        crate::helpers::spawn_app_with(crate::helpers::test_config(&first.db), first.db.clone())
            .await;
    let id = first.create_product("SHARED-1", 4).await["id"]
        .as_i64()
        .unwrap();
    send(
        &first,
        Method::PUT,
        &format!("/v1/products/{id}/stock"),
        json!({"stock": 9}),
    )
    .await;
    let read = second.product(id).await;
    assert_eq!(
        (read["stock"].as_i64(), read["version"].as_i64()),
        (Some(9), Some(2))
    );
}
