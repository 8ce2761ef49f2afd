//! What one client may take: purchase limits per product, and the shop's default.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use shopnow::Product;

use crate::helpers::{assert_error, ok, TestApp, SHARED_REDIS};

impl TestApp {
    async fn create_limited(&self, sku: &str, stock: i64, limit: Value) -> Product {
        let response = self
            .admin(Method::POST, "/v1/products")
            .json(
                &json!({"sku": sku, "name": sku, "price_cents": 100, "stock": stock,
                          "purchase_limit": limit}),
            )
            .send()
            .await
            .unwrap();
        ok(response, StatusCode::CREATED).await
    }
}

/// A product limited to 2 per hold or order: 3 is refused with 422 and takes nothing, 2
/// goes through; the limit is part of the product a read shows.
#[tokio::test]
async fn a_product_limit_refuses_a_larger_hold_or_order_and_changes_nothing() {
    let app = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let id = app.create_limited("LIMIT-2", 10, json!(2)).await.id;
    assert_eq!(app.product(id).await.purchase_limit, Some(2));
    let before = app.stored(id).await;

    let message = assert_error(
        app.hold(&[(id, 3)], Some(600)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "over_purchase_limit",
    )
    .await;
    assert!(
        message["message"].as_str().unwrap().contains("at most 2"),
        "{message}"
    );
    assert_error(
        app.order(&[(id, 3)], None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "over_purchase_limit",
    )
    .await;
    assert_eq!(app.stored(id).await, before, "nothing changed");
    assert_eq!(app.counts(id).await, (10, 0, 10));

    app.held(&[(id, 2)], Some(600)).await;
    ok::<Value>(app.order(&[(id, 2)], None).await, StatusCode::CREATED).await;
    assert_eq!(app.counts(id).await, (8, 2, 6));
}

/// Without a limit of its own a product has the shop's (`SHOPNOW_MAX_LINE_QUANTITY`); a
/// change of the limit is a change of the product, shown by every read at once.
#[tokio::test]
async fn the_shops_default_applies_until_a_product_sets_its_own() {
    let app = TestApp::builder()
        .versioned(SHARED_REDIS)
        .with_config(|c| c.max_line_quantity = 5)
        .spawn()
        .await;
    let id = app
        .create_limited("LIMIT-DEFAULT", 100, Value::Null)
        .await
        .id;
    assert_eq!(app.product(id).await.purchase_limit, None);
    assert_error(
        app.order(&[(id, 6)], None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "over_purchase_limit",
    )
    .await;
    ok::<Value>(app.order(&[(id, 5)], None).await, StatusCode::CREATED).await;

    let path = format!("/v1/products/{id}");
    let raised = app
        .change(Method::PATCH, &path, json!({"purchase_limit": 8}))
        .await;
    assert_eq!(raised.purchase_limit, Some(8));
    let read = app.product(id).await;
    assert_eq!(
        (read.purchase_limit, read.version),
        (Some(8), raised.version)
    );
    ok::<Value>(app.order(&[(id, 8)], None).await, StatusCode::CREATED).await;

    // null gives the product the shop's default back; a patch without the field keeps it.
    let reset = app
        .change(Method::PATCH, &path, json!({"purchase_limit": null}))
        .await;
    assert_eq!(reset.purchase_limit, None);
    let renamed = app
        .change(Method::PATCH, &path, json!({"name": "Renamed"}))
        .await;
    assert_eq!(renamed.purchase_limit, None);
    assert_error(
        app.hold(&[(id, 6)], Some(600)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "over_purchase_limit",
    )
    .await;
}

#[tokio::test]
async fn a_purchase_limit_out_of_range_is_refused() {
    let app = TestApp::builder().spawn().await;
    let id = app.create_limited("LIMIT-OK", 1, json!(3)).await.id;
    for bad in [json!(0), json!(10_001), json!(-1), json!("2")] {
        let response = app
            .admin(Method::POST, "/v1/products")
            .json(&json!({"sku": "LIMIT-BAD", "name": "Bad", "price_cents": 1,
                          "purchase_limit": bad}))
            .send()
            .await
            .unwrap();
        assert!(
            response.status() == StatusCode::UNPROCESSABLE_ENTITY
                || response.status() == StatusCode::BAD_REQUEST,
            "{bad}: {}",
            response.status()
        );
        let patched = app
            .admin(Method::PATCH, &format!("/v1/products/{id}"))
            .json(&json!({ "purchase_limit": bad }))
            .send()
            .await
            .unwrap();
        assert!(patched.status().is_client_error(), "{bad}");
    }
    assert_eq!(app.product(id).await.purchase_limit, Some(3));
}

/// A client limited to 3 writes at once and 6 a minute: its fourth answers 429 with
/// `Retry-After` and changes nothing, whichever instance it reaches (they count in Redis
/// together); reads are not counted; every counted answer says where the client stands.
#[tokio::test]
async fn writes_past_the_burst_answer_429_and_every_instance_counts_together() {
    let limited = |c: &mut shopnow::Config| {
        c.rate_limit.per_minute = 6;
        c.rate_limit.burst = 3;
    };
    let a = TestApp::builder()
        .versioned(SHARED_REDIS)
        .with_config(limited)
        .spawn()
        .await;
    let b = a.sibling().with_config(limited).spawn().await;
    let id = a.create_product("RATE-1", 100).await.id;

    let mut left = Vec::new();
    for response in [
        a.hold(&[(id, 1)], Some(600)).await,
        b.order(&[(id, 1)], None).await,
        a.hold(&[(id, 1)], Some(600)).await,
    ] {
        assert!(response.status().is_success(), "{}", response.status());
        assert_eq!(
            response.headers()["ratelimit-policy"],
            "\"writes\";q=3;w=30"
        );
        left.push(response.headers()["ratelimit"].to_str().unwrap().to_owned());
    }
    assert!(left[0].starts_with("\"writes\";r=2;"), "{left:?}");
    assert!(left[2].starts_with("\"writes\";r=0;"), "{left:?}");
    let before = a.counts(id).await;

    let refused = b.hold(&[(id, 1)], Some(600)).await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
    assert_eq!(a.counts(id).await, before, "the refused hold took nothing");
    // Reads and admin writes are not counted.
    assert_eq!(
        a.get(&format!("/v1/products/{id}")).await.status(),
        StatusCode::OK
    );
    a.adjust(id, 1).await;
}

/// Behind a proxy, the client is the address the proxy names in `X-Forwarded-For`, but only
/// when the proxy is trusted: anyone else's header is ignored, and they count as themselves.
#[tokio::test]
async fn x_forwarded_for_names_the_client_only_from_a_trusted_proxy() {
    let app = TestApp::builder()
        .with_config(|c| {
            c.rate_limit.per_minute = 1;
            c.rate_limit.burst = 1;
            c.rate_limit.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        })
        .spawn()
        .await;
    let id = app.create_product("RATE-XFF", 100).await.id;
    let from = |client: &'static str| {
        app.client()
            .post(app.url("/v1/orders"))
            .header("X-Forwarded-For", client)
            .json(&json!({"items": [{"product_id": id, "quantity": 1}]}))
            .send()
    };
    assert_eq!(
        from("203.0.113.1").await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(
        from("203.0.113.1").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        from("203.0.113.2").await.unwrap().status(),
        StatusCode::CREATED
    );

    // No proxy trusted: the header names nobody, the peer is the client.
    let untrusting = TestApp::builder()
        .with_config(|c| {
            c.rate_limit.per_minute = 1;
            c.rate_limit.burst = 1;
        })
        .spawn()
        .await;
    let id = untrusting.create_product("RATE-PEER", 100).await.id;
    let mut statuses = Vec::new();
    for client in ["203.0.113.1", "203.0.113.2"] {
        let response = untrusting
            .client()
            .post(untrusting.url("/v1/orders"))
            .header("X-Forwarded-For", client)
            .json(&json!({"items": [{"product_id": id, "quantity": 1}]}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::TOO_MANY_REQUESTS]
    );
}
