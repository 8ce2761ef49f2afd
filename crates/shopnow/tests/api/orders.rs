use std::collections::HashMap;

use futures::future::join_all;
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::json;
use shopnow::{Order, OrderReceipt, Product};

use crate::helpers::{assert_error, ok, TestApp, ADMIN_TOKEN};

#[tokio::test]
async fn concurrent_orders_never_oversell() {
    let app = TestApp::builder().spawn().await;
    let id = app.create_product("FLASH-1", 50).await.id;

    let items = [(id, 1)];
    let responses = join_all((0..200).map(|_| app.order(&items, None))).await;
    let mut created = 0;
    for response in responses {
        match response.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {
                assert_error(response, StatusCode::CONFLICT, "insufficient_stock").await;
            }
            other => panic!(
                "unexpected status {other}: {}",
                response.text().await.unwrap()
            ),
        }
    }
    assert_eq!(created, 50);
    assert_eq!(
        app.stored(id).await,
        (0, 51),
        "stock 0, one version per order"
    );
}

#[tokio::test]
async fn overlapping_multi_item_orders_do_not_deadlock_and_take_exact_stock() {
    let app = TestApp::builder().spawn().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(app.create_product(&format!("MIX-{n}"), 40).await.id);
    }
    let mut rng = StdRng::seed_from_u64(7);
    let orders: Vec<Vec<(i64, i64)>> = (0..120)
        .map(|_| {
            let mut chosen = ids.clone();
            chosen.shuffle(&mut rng);
            let count = rng.random_range(2..=5);
            chosen[..count]
                .iter()
                .map(|&id| (id, rng.random_range(1..=3)))
                .collect()
        })
        .collect();

    let responses = join_all(orders.iter().map(|items| app.order(items, None))).await;
    let mut taken: HashMap<i64, i64> = HashMap::new();
    let mut changes: HashMap<i64, i64> = HashMap::new();
    for (items, response) in orders.iter().zip(responses) {
        match response.status() {
            StatusCode::CREATED => {
                for &(id, quantity) in items {
                    *taken.entry(id).or_default() += quantity;
                    *changes.entry(id).or_default() += 1;
                }
            }
            StatusCode::CONFLICT => {
                assert_error(response, StatusCode::CONFLICT, "insufficient_stock").await;
            }
            other => panic!(
                "unexpected status {other}: {}",
                response.text().await.unwrap()
            ),
        }
    }
    assert!(!taken.is_empty(), "some orders went through");
    for id in ids {
        let (stock, version) = app.stored(id).await;
        assert_eq!(
            stock,
            40 - taken.get(&id).copied().unwrap_or(0),
            "product {id}"
        );
        assert_eq!(
            version,
            1 + changes.get(&id).copied().unwrap_or(0),
            "product {id}"
        );
    }
}

#[tokio::test]
async fn an_order_with_one_unavailable_item_changes_nothing() {
    let app = TestApp::builder().spawn().await;
    let plenty = app.create_product("PLENTY", 10).await.id;
    let scarce = app.create_product("SCARCE", 1).await.id;

    let response = app.order(&[(plenty, 2), (scarce, 2)], None).await;
    let body = assert_error(response, StatusCode::CONFLICT, "insufficient_stock").await;
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains(&scarce.to_string()));
    assert_eq!(app.stored(plenty).await, (10, 1));
    assert_eq!(app.stored(scarce).await, (1, 1));

    let response = app.order(&[(plenty, 2), (999_999, 1)], None).await;
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.stored(plenty).await, (10, 1));

    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(orders, 0);
}

#[tokio::test]
async fn an_order_records_its_items_prices_and_total() {
    let app = TestApp::builder().spawn().await;
    let a = app.create_product("ORD-A", 10).await.id;
    let b = app.create_product("ORD-B", 10).await.id;

    // Items out of order and one product twice: stored as one line per product.
    let receipt = app.placed_order(&[(b, 1), (a, 2), (b, 3)]).await;
    let order = &receipt.order;
    assert_eq!(order.status, shopnow::OrderStatus::Confirmed);
    assert_eq!(order.total_cents, 250 * 6);
    assert_eq!(order.currency, "USD");
    assert_eq!(order.items[0].product_id, a);
    assert_eq!(order.items[0].quantity, 2);
    assert_eq!(order.items[1].quantity, 4);

    let fetched: Order = ok(
        app.read_order(order.id, Some(&receipt.access_token)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(&fetched, order);
    assert_eq!(app.stored(a).await, (8, 2));
    assert_eq!(app.stored(b).await, (6, 2));

    assert_error(
        app.read_order(424_242, Some(ADMIN_TOKEN)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn one_idempotency_key_sent_concurrently_places_one_order() {
    let app = TestApp::builder().spawn().await;
    let id = app.create_product("IDEM-1", 100).await.id;

    let items = [(id, 3)];
    let key = "checkout-7f3a-5c1e-4b2d";
    let responses = join_all((0..20).map(|_| app.order(&items, Some(key)))).await;
    let mut receipts = Vec::new();
    let mut replays = 0;
    for response in responses {
        if response.headers().get("idempotent-replayed").is_some() {
            replays += 1;
        }
        let receipt: OrderReceipt = ok(response, StatusCode::CREATED).await;
        receipts.push((receipt.order.id, receipt.access_token));
    }
    receipts.dedup();
    assert_eq!(
        receipts.len(),
        1,
        "every retry returns the same order and token"
    );
    assert_eq!(replays, 19);
    assert_eq!(app.stored(id).await, (97, 2), "stock taken once");
}

/// The probe's attack: guess a weak key, then the items one try at a time, until a replay
/// hands over someone else's order and its access token.
#[tokio::test]
async fn a_guessed_idempotency_key_never_hands_over_another_customers_order() {
    let app = TestApp::builder().spawn().await;
    let id = app.create_product("IDEM-GUESS", 100).await.id;

    // Keys anyone could guess are refused and place nothing.
    for weak in [
        "aaaaaaaaaaaaaaaa",
        "order-2026-00000042",
        "aaaaaaaaaaaaaaaaaaaaaa",
        "00000000-0000-4000-8000-000000000042",
    ] {
        let response = app.order(&[(id, 1)], Some(weak)).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_idempotency_key").await;
    }
    assert_eq!(app.stored(id).await, (100, 1));

    // A victim's order under a strong key; an attacker who somehow has the key but not the
    // items learns nothing: each wrong guess is an order of its own, never a "key in use".
    let key = uuid::Uuid::new_v4().to_string();
    let victim: OrderReceipt =
        ok(app.order(&[(id, 3)], Some(&key)).await, StatusCode::CREATED).await;
    for guess in [1, 2, 4] {
        let response = app.order(&[(id, guess)], Some(&key)).await;
        assert!(response.headers().get("idempotent-replayed").is_none());
        let theirs: OrderReceipt = ok(response, StatusCode::CREATED).await;
        assert_ne!(theirs.order.id, victim.order.id);
        assert_ne!(theirs.access_token, victim.access_token);
    }
    assert_eq!(app.stored(id).await.0, 100 - 3 - 1 - 2 - 4);
}

#[tokio::test]
async fn a_failed_order_does_not_burn_its_idempotency_key() {
    let app = TestApp::builder().spawn().await;
    let id = app.create_product("IDEM-2", 1).await.id;
    let key = "retry-me-after-restock-42";
    let response = app.order(&[(id, 2)], Some(key)).await;
    assert_error(response, StatusCode::CONFLICT, "insufficient_stock").await;

    app.admin(reqwest::Method::PUT, &format!("/v1/products/{id}/stock"))
        .json(&serde_json::json!({"stock": 5}))
        .send()
        .await
        .unwrap();
    let response = app.order(&[(id, 2)], Some(key)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(app.stored(id).await.0, 3);
}

#[tokio::test]
async fn an_order_is_readable_only_with_its_token_or_the_admin_token() {
    let app = TestApp::builder().spawn().await;
    let id = app.create_product("PRIVATE-1", 10).await.id;
    let mine = app.placed_order(&[(id, 1)]).await;
    let theirs = app.placed_order(&[(id, 2)]).await;
    assert_eq!(mine.access_token.len(), 64, "256 random bits in hex");
    assert_ne!(mine.access_token, theirs.access_token);

    assert_error(
        app.read_order(mine.order.id, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    // A wrong token, another order's, or one of a neighbour's id: "no such order", so that
    // counting ids up reveals nothing.
    for (id, token) in [
        (mine.order.id, "not-a-token"),
        (mine.order.id, theirs.access_token.as_str()),
        (theirs.order.id, mine.access_token.as_str()),
    ] {
        assert_error(
            app.read_order(id, Some(token)).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    for token in [mine.access_token.as_str(), ADMIN_TOKEN] {
        let read: Order = ok(
            app.read_order(mine.order.id, Some(token)).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(read, mine.order);
    }
    let lower_case = app
        .client
        .get(app.url(&format!("/v1/orders/{}", mine.order.id)))
        .header("Authorization", format!("bearer {}", mine.access_token))
        .send()
        .await
        .unwrap();
    assert_eq!(
        lower_case.status(),
        StatusCode::OK,
        "the scheme is case-insensitive"
    );
}

#[tokio::test]
async fn a_weak_idempotency_key_is_refused_and_changes_nothing() {
    let app = TestApp::builder().spawn().await;
    let id = app.create_product("SHORTKEY-1", 10).await.id;
    let response = app.order(&[(id, 1)], Some("order-1")).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_idempotency_key").await;
    assert_eq!(app.stored(id).await, (10, 1));
}

/// A total past 2^53 cents would reach a JavaScript client rounded: refused, and nothing taken.
#[tokio::test]
async fn an_order_whose_total_a_json_client_cannot_hold_is_refused() {
    let app = TestApp::builder().spawn().await;
    let response = app
        .admin(Method::POST, "/v1/products")
        .json(
            &json!({"sku": "DEAR-1", "name": "Dear", "price_cents": 1_000_000_000_000_i64,
                      "stock": 100_000}),
        )
        .send()
        .await
        .unwrap();
    let id = ok::<Product>(response, StatusCode::CREATED).await.id;
    // 9,000 units: 9 * 10^15 cents, just below 2^53; 10,000: past it.
    ok::<serde_json::Value>(app.order(&[(id, 9_000)], None).await, StatusCode::CREATED).await;
    assert_error(
        app.order(&[(id, 10_000)], None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    assert_eq!(app.stored(id).await.0, 91_000);
}

/// A UUID is one key in every form it can be written in: a retry that changed its case (or
/// dropped its hyphens) finds the order, it does not place a second one.
#[tokio::test]
async fn a_uuid_key_in_another_case_is_the_same_key() {
    let app = TestApp::builder().spawn().await;
    let id = app.create_product("UUIDCASE-1", 10).await.id;
    let key = "5f2c1e0a-8b4d-4c6e-9f7a-3d2b1c0e9f8a";
    let first = app.order(&[(id, 1)], Some(key)).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    for retry in [key.to_uppercase(), key.replace('-', "")] {
        let again = app.order(&[(id, 1)], Some(&retry)).await;
        assert_eq!(again.status(), StatusCode::CREATED);
        assert_eq!(
            again
                .headers()
                .get("idempotent-replayed")
                .and_then(|v| v.to_str().ok()),
            Some("true"),
            "{retry}"
        );
    }
    assert_eq!(app.stored(id).await.0, 9, "one order took one unit");
}

#[tokio::test]
async fn idempotency_keys_are_forgotten_after_their_retention() {
    let app = TestApp::builder().spawn().await;
    let id = app.create_product("RETAINED-1", 100).await.id;
    for n in 0..3 {
        let key = format!("old-checkout-key-{n:05}");
        assert_eq!(
            app.order(&[(id, 1)], Some(&key)).await.status(),
            StatusCode::CREATED
        );
    }
    let recent = "recent-checkout-key-0001";
    assert_eq!(
        app.order(&[(id, 1)], Some(recent)).await.status(),
        StatusCode::CREATED
    );
    // Three keys from two days ago; the retention is a day.
    sqlx::query(
        "UPDATE idempotency_keys SET created_at = now() - interval '2 days' \
         WHERE key LIKE 'old-%'",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    // Every instance's janitor runs a pass as it starts.
    let _janitor = app.sibling().spawn().await;
    let keys = || async {
        sqlx::query_scalar::<_, String>("SELECT key FROM idempotency_keys ORDER BY key")
            .fetch_all(&app.pool)
            .await
            .unwrap()
    };
    let expired = crate::helpers::eventually(std::time::Duration::from_secs(5), || async {
        keys().await == vec![recent.to_string()]
    })
    .await;
    assert!(expired.is_some(), "left: {:?}", keys().await);
    // A forgotten key places a new order; the remembered one still replays.
    let again = app.order(&[(id, 1)], Some("old-checkout-key-00000")).await;
    assert!(again.headers().get("idempotent-replayed").is_none());
    let replay = app.order(&[(id, 1)], Some(recent)).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
}
