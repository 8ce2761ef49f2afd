use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use shopnow::Product;

use crate::helpers::{assert_error, ok, TestApp};

/// A page of `GET /v1/products`.
#[derive(Deserialize)]
struct ProductPage {
    items: Vec<Product>,
    next: Option<i64>,
}

#[tokio::test]
async fn every_change_of_a_product_raises_its_version_by_one() {
    let app = TestApp::builder().spawn().await;
    let created = app.create_product("VER-1", 10).await;
    let id = created.id;
    assert_eq!(created.version, 1);
    let path = format!("/v1/products/{id}");

    let patched = app
        .change(Method::PATCH, &path, json!({"price_cents": 999}))
        .await;
    assert_eq!((patched.version, patched.price_cents), (2, 999));

    let set = app
        .change(Method::PUT, &format!("{path}/stock"), json!({"stock": 7}))
        .await;
    assert_eq!((set.version, set.stock), (3, 7));

    let adjusted = app.adjust(id, -2).await;
    assert_eq!((adjusted.version, adjusted.stock), (4, 5));

    app.placed_order(&[(id, 1)]).await;
    let read = app.product(id).await;
    assert_eq!((read.version, read.stock), (5, 4));

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
    let app = TestApp::builder().spawn().await;
    let id = app.create_product("DEL-1", 5).await.id;
    let order = app.placed_order(&[(id, 1)]).await;
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

    let kept = app
        .read_order(order.order.id, Some(&order.access_token))
        .await;
    assert_eq!(kept.status(), StatusCode::OK);

    // The SKU of a deleted product can be used again.
    app.create_product("DEL-1", 1).await;
}

#[tokio::test]
async fn a_product_read_carries_etag_and_answers_304_when_unchanged() {
    let app = TestApp::builder().spawn().await;
    let id = app.create_product("ETAG-1", 3).await.id;
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

    app.adjust(id, 1).await;
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

/// `GET /v1/products/<digits>` is served past axum's router (`ProductReads`); any other
/// spelling of the same read goes through the router. Both answer alike.
#[tokio::test]
async fn a_product_read_answers_alike_past_the_router_and_through_it() {
    let app = TestApp::builder().spawn().await;
    let id = app.create_product("SHORTCUT-1", 5).await.id;
    let past_router = app.get(&format!("/v1/products/{id}")).await;
    let routed = app.get(&format!("/v1/products/+{id}")).await;
    for header in ["etag", "cache-control", "content-type", "x-cache"] {
        assert_eq!(
            past_router.headers().get(header),
            routed.headers().get(header),
            "{header}"
        );
    }
    assert!(past_router.headers().contains_key("x-request-id"));
    let (past_router, routed) = (
        past_router.text().await.unwrap(),
        routed.text().await.unwrap(),
    );
    assert_eq!(past_router, routed);
    let product: Product = serde_json::from_str(&past_router).unwrap();
    assert_eq!((product.id, product.stock), (id, 5));

    // HEAD goes through the router: the same head, no body.
    let head = app
        .client
        .head(app.url(&format!("/v1/products/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["etag"], "\"1\"");
    assert!(head.text().await.unwrap().is_empty());

    // Ids that are not products, whichever way they are read: the same JSON 404.
    for path in [
        "/v1/products/0",
        "/v1/products/000",
        "/v1/products/-1",
        "/v1/products/99999999999999999999",
        "/v1/products/999999999999999999",
    ] {
        assert_error(app.get(path).await, StatusCode::NOT_FOUND, "not_found").await;
    }
}

#[tokio::test]
async fn adjustments_below_zero_are_refused_and_change_nothing() {
    let app = TestApp::builder().spawn().await;
    let id = app.create_product("ADJ-1", 2).await.id;
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
    let app = TestApp::builder().spawn().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(app.create_product(&format!("PAGE-{n}"), 1).await.id);
    }
    app.admin(Method::DELETE, &format!("/v1/products/{}", ids[1]))
        .send()
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut path = "/v1/products?limit=2".to_string();
    loop {
        let page: ProductPage = ok(app.get(&path).await, StatusCode::OK).await;
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|p| p.id));
        match page.next {
            Some(next) => path = format!("/v1/products?limit=2&after={next}"),
            None => break,
        }
        assert!(seen.len() < 10, "pagination must end");
    }
    let live: Vec<i64> = ids.iter().copied().filter(|&id| id != ids[1]).collect();
    assert_eq!(seen, live);

    for bad in ["limit=0", "limit=201", "limit=abc", "after=-1"] {
        let response = app.get(&format!("/v1/products?{bad}")).await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    }
    // Parameters the API does not know, as links from campaigns carry, are ignored.
    let tracked = app
        .get("/v1/products?limit=2&utm_source=newsletter&fbclid=x1")
        .await;
    let page: ProductPage = ok(tracked, StatusCode::OK).await;
    assert_eq!(page.items.len(), 2);
}

#[tokio::test]
async fn seeding_twice_adds_nothing() {
    let app = TestApp::builder().spawn().await;
    let first = app.catalog.seed_demo(25).await.unwrap();
    let second = app.catalog.seed_demo(25).await.unwrap();
    assert_eq!((first, second), (25, 0));
    let page: ProductPage = ok(app.get("/v1/products?limit=200").await, StatusCode::OK).await;
    assert_eq!(page.items.len(), 25);
}

#[tokio::test]
async fn a_second_instance_on_the_same_database_sees_every_write() {
    let first = TestApp::builder().spawn().await;
    let second = first.sibling().spawn().await;
    let id = first.create_product("SHARED-1", 4).await.id;
    first
        .change(
            Method::PUT,
            &format!("/v1/products/{id}/stock"),
            json!({"stock": 9}),
        )
        .await;
    let read = second.product(id).await;
    assert_eq!((read.stock, read.version), (9, 2));
}
