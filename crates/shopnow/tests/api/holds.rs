//! Holds that set stock aside and expire, orders made from them, and cancellations: what a
//! shopper reads stays exact in time as well as in versions.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use shopnow::{CacheStrategy, Order, OrderReceipt, OrderStatus, Product};
use testkit::TestDatabase;

use crate::helpers::{assert_error, ok, TestApp, ADMIN_TOKEN, SHARED_REDIS};

#[derive(Debug, Deserialize)]
pub(crate) struct HoldReceipt {
    pub(crate) id: String,
    status: String,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) access_token: String,
    items: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct Hold {
    status: String,
    order_id: Option<i64>,
}

impl TestApp {
    pub(crate) async fn hold(&self, items: &[(i64, i64)], ttl_seconds: Option<u64>) -> Response {
        let items: Vec<Value> = items
            .iter()
            .map(|(id, q)| json!({"product_id": id, "quantity": q}))
            .collect();
        let mut body = json!({ "items": items });
        if let Some(ttl) = ttl_seconds {
            body["ttl_seconds"] = json!(ttl);
        }
        self.post_json("/v1/holds", body, None).await
    }

    pub(crate) async fn held(&self, items: &[(i64, i64)], ttl_seconds: Option<u64>) -> HoldReceipt {
        ok(self.hold(items, ttl_seconds).await, StatusCode::CREATED).await
    }

    async fn post_json(&self, path: &str, body: Value, token: Option<&str>) -> Response {
        let mut request = reqwest::Client::new().post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn with_token(&self, method: Method, path: &str, token: Option<&str>) -> Response {
        let mut request = reqwest::Client::new().request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub(crate) async fn order_from(&self, hold: &HoldReceipt, token: Option<&str>) -> Response {
        self.post_json("/v1/orders", json!({ "hold_id": hold.id }), token)
            .await
    }

    async fn cancel(&self, order: i64, token: Option<&str>) -> Response {
        self.with_token(Method::POST, &format!("/v1/orders/{order}/cancel"), token)
            .await
    }

    /// (stock, reserved, available) as a product read shows them.
    pub(crate) async fn counts(&self, id: i64) -> (i64, i64, i64) {
        let product = self.product(id).await;
        (product.stock, product.reserved, product.available)
    }
}

/// Sleeps until `instant` (the database's clock, which is this machine's) has passed: a hold's
/// expiry is a time, not an event anything announces.
async fn wait_past(instant: DateTime<Utc>) {
    let left = (instant - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(20)).await;
}

#[tokio::test]
async fn a_hold_sets_units_aside_until_it_is_released() {
    let app = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let id = app.create_product("HOLD-1", 5).await.id;
    assert_eq!(app.counts(id).await, (5, 0, 5));

    let hold = app.held(&[(id, 2)], Some(600)).await;
    assert_eq!(hold.status, "held");
    assert_eq!(hold.items, vec![json!({"product_id": id, "quantity": 2})]);
    assert!(hold.expires_at > Utc::now() + chrono::Duration::seconds(590));
    assert_eq!(app.counts(id).await, (5, 2, 3), "reserved at once");

    // Nobody else can take the held units, by order, hold or stock change.
    let order = app.order(&[(id, 4)], None).await;
    assert_error(order, StatusCode::CONFLICT, "insufficient_stock").await;
    let other = app.hold(&[(id, 4)], None).await;
    assert_error(other, StatusCode::CONFLICT, "insufficient_stock").await;
    let adjust = app
        .admin(
            Method::POST,
            &format!("/v1/products/{id}/stock/adjustments"),
        )
        .json(&json!({"delta": -4}))
        .send()
        .await
        .unwrap();
    assert_error(adjust, StatusCode::CONFLICT, "insufficient_stock").await;
    let set = app
        .admin(Method::PUT, &format!("/v1/products/{id}/stock"))
        .json(&json!({"stock": 1}))
        .send()
        .await
        .unwrap();
    assert_error(set, StatusCode::CONFLICT, "insufficient_stock").await;
    assert_eq!(
        app.counts(id).await,
        (5, 2, 3),
        "the refusals changed nothing"
    );

    let released: Hold = ok(
        app.with_token(
            Method::DELETE,
            &format!("/v1/holds/{}", hold.id),
            Some(&hold.access_token),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(released.status, "released");
    assert_eq!(app.counts(id).await, (5, 0, 5), "released at once");
    // Releasing again changes nothing.
    let again: Hold = ok(
        app.with_token(
            Method::DELETE,
            &format!("/v1/holds/{}", hold.id),
            Some(ADMIN_TOKEN),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(again.status, "released");
}

#[tokio::test]
async fn a_lapsed_hold_stops_counting_on_every_instance_with_no_write() {
    // No sweep during the test: the expiry alone must change what reads show.
    let a = TestApp::builder()
        .versioned(SHARED_REDIS)
        .with_config(|c| c.hold_sweep_interval = Duration::from_secs(3600))
        .spawn()
        .await;
    let b = a.sibling().spawn().await;
    let id = a.create_product("LAPSE-1", 10).await.id;
    a.held(&[(id, 3)], Some(600)).await;
    let short = a.held(&[(id, 2)], Some(1)).await;
    let path = format!("/v1/products/{id}");
    let mut etags = Vec::new();
    for app in [&a, &b] {
        app.get(&path).await; // filled, if the write-through left nothing
        let response = app.get(&path).await;
        assert_eq!(response.headers()["x-cache"], "hit");
        etags.push(response.headers()["etag"].to_str().unwrap().to_owned());
        let product: Product = response.json().await.unwrap();
        assert_eq!((product.reserved, product.available), (5, 5));
    }
    let version = a.stored(id).await.1;

    wait_past(short.expires_at).await;
    for (app, etag) in [(&a, &etags[0]), (&b, &etags[1])] {
        // A client revalidating with the ETag it had gets the new content, not a 304.
        let response = app
            .client()
            .get(app.url(&path))
            .header("If-None-Match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-cache"], "hit", "no write, no miss");
        assert_eq!(
            response.headers()["etag"],
            format!("\"{version}-1\"").as_str()
        );
        let product: Product = response.json().await.unwrap();
        assert_eq!((product.reserved, product.available), (3, 7));
        assert_eq!(product.version, version, "an expiry is not a write");
    }
    assert_eq!(a.stored(id).await.1, version);

    // The lapsed hold cannot become an order, and changes nothing trying.
    let refused = a.order_from(&short, Some(&short.access_token)).await;
    assert_error(refused, StatusCode::CONFLICT, "hold_expired").await;
    let hold: Hold = ok(
        a.with_token(
            Method::GET,
            &format!("/v1/holds/{}", short.id),
            Some(&short.access_token),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(hold.status, "expired");
    assert_eq!(a.stored(id).await, (10, version));
}

#[tokio::test]
async fn a_hold_becomes_an_order_once() {
    let app = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let id = app.create_product("CONVERT-1", 5).await.id;
    let hold = app.held(&[(id, 2)], None).await;
    assert!(
        hold.expires_at > Utc::now() + chrono::Duration::seconds(590),
        "600 s by default"
    );

    let without_token = app.order_from(&hold, None).await;
    assert_error(without_token, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let wrong_token = app.order_from(&hold, Some("not-the-token")).await;
    assert_error(wrong_token, StatusCode::NOT_FOUND, "not_found").await;

    let receipt: OrderReceipt = ok(
        app.order_from(&hold, Some(&hold.access_token)).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(receipt.order.items.len(), 1);
    assert_eq!(
        (receipt.order.items[0].quantity, receipt.order.total_cents),
        (2, 500)
    );
    assert_eq!(
        app.counts(id).await,
        (3, 0, 3),
        "the held units became the order's"
    );

    let twice = app.order_from(&hold, Some(&hold.access_token)).await;
    assert_error(twice, StatusCode::CONFLICT, "hold_converted").await;
    let release = app
        .with_token(
            Method::DELETE,
            &format!("/v1/holds/{}", hold.id),
            Some(&hold.access_token),
        )
        .await;
    assert_error(release, StatusCode::CONFLICT, "hold_converted").await;
    let read: Hold = ok(
        app.with_token(
            Method::GET,
            &format!("/v1/holds/{}", hold.id),
            Some(&hold.access_token),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (read.status.as_str(), read.order_id),
        ("converted", Some(receipt.order.id))
    );
    assert_eq!(app.counts(id).await, (3, 0, 3));
}

#[tokio::test]
async fn three_hundred_concurrent_holds_on_fifty_units_over_two_instances_set_aside_fifty() {
    let a = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let b = a.sibling().spawn().await;
    let id = a.create_product("HOLD-RUSH", 50).await.id;
    let items = [(id, 1)];
    let responses = join_all((0..300).map(|n| {
        let app = if n % 2 == 0 { &a } else { &b };
        app.hold(&items, Some(600))
    }))
    .await;
    let mut held = 0;
    for response in responses {
        match response.status() {
            StatusCode::CREATED => held += 1,
            StatusCode::CONFLICT => {
                assert_error(response, StatusCode::CONFLICT, "insufficient_stock").await;
            }
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
    }
    assert_eq!(held, 50);
    assert_eq!(a.counts(id).await, (50, 50, 0));
    assert_eq!(b.counts(id).await, (50, 50, 0));
    assert_error(
        a.order(&[(id, 1)], None).await,
        StatusCode::CONFLICT,
        "insufficient_stock",
    )
    .await;
}

#[tokio::test]
async fn a_cancelled_order_returns_its_stock_once() {
    let a = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let b = a.sibling().spawn().await;
    let id = a.create_product("CANCEL-1", 10).await.id;
    let receipt = a.placed_order(&[(id, 3)]).await;
    assert_eq!(receipt.order.status, OrderStatus::Confirmed);
    assert_eq!(b.counts(id).await, (7, 0, 7));

    let stranger = a.placed_order(&[(id, 1)]).await;
    let wrong = a
        .cancel(receipt.order.id, Some(&stranger.access_token))
        .await;
    assert_error(wrong, StatusCode::NOT_FOUND, "not_found").await;
    let anonymous = a.cancel(receipt.order.id, None).await;
    assert_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(
        b.counts(id).await,
        (6, 0, 6),
        "nothing returned by refused cancels"
    );

    let cancelled: Order = ok(
        a.cancel(receipt.order.id, Some(&receipt.access_token))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(cancelled.items, receipt.order.items);
    // Every instance shows the stock back once the cancel is acknowledged.
    assert_eq!(b.counts(id).await, (9, 0, 9));
    assert_eq!(a.counts(id).await, (9, 0, 9));

    let again: Order = ok(
        a.cancel(receipt.order.id, Some(ADMIN_TOKEN)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(again, cancelled, "the same order, nothing returned twice");
    assert_eq!(b.counts(id).await, (9, 0, 9));
    let read: Order = ok(
        a.read_order(receipt.order.id, Some(&receipt.access_token))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read.status, OrderStatus::Cancelled);
}

#[tokio::test]
async fn bad_holds_are_refused_and_change_nothing() {
    let app = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let id = app.create_product("BAD-HOLD", 5).await.id;
    let version = app.stored(id).await.1;
    let many: Vec<Value> = (1..=101)
        .map(|n| json!({"product_id": n, "quantity": 1}))
        .collect();
    for (body, status, code) in [
        (
            json!({"items": [{"product_id": 999_999, "quantity": 1}]}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"items": [{"product_id": id, "quantity": 0}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            json!({"items": [{"product_id": id, "quantity": -1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            json!({"items": [{"product_id": id, "quantity": 1}, {"product_id": id, "quantity": 1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            json!({"items": many}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            json!({"items": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            json!({"items": [{"product_id": id, "quantity": 1}], "ttl_seconds": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            json!({"items": [{"product_id": id, "quantity": 1}], "ttl_seconds": 3601}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            json!({"items": [{"product_id": id, "quantity": 1}], "ttl_seconds": -5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            json!({"items": [{"product_id": id, "quantity": 1}], "shipping": "fast"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            json!({"items": [{"product_id": id, "quantity": 6}]}),
            StatusCode::CONFLICT,
            "insufficient_stock",
        ),
    ] {
        let response = app.post_json("/v1/holds", body.clone(), None).await;
        let got = response.status();
        assert_eq!(got, status, "{body}");
        assert_error(response, status, code).await;
    }
    for (body, status, code) in [
        (
            json!({"hold_id": "not-a-hold"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            json!({"hold_id": uuid::Uuid::new_v4().to_string(), "items": [{"product_id": id, "quantity": 1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        // One or the other, as the schema says, even when the items are none.
        (
            json!({"hold_id": uuid::Uuid::new_v4().to_string(), "items": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
    ] {
        let response = app
            .post_json("/v1/orders", body.clone(), Some("any-token"))
            .await;
        assert_error(response, status, code).await;
    }
    let unknown = uuid::Uuid::new_v4();
    for (method, path, token, status) in [
        (
            Method::GET,
            "/v1/holds/not-a-uuid".to_string(),
            Some("t"),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            format!("/v1/holds/{unknown}"),
            Some(ADMIN_TOKEN),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            format!("/v1/holds/{unknown}"),
            Some("t"),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            format!("/v1/holds/{unknown}"),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::POST,
            "/v1/orders/999999/cancel".to_string(),
            Some(ADMIN_TOKEN),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let response = app.with_token(method.clone(), &path, token).await;
        assert_eq!(response.status(), status, "{method} {path}");
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
    }
    // Someone else's hold reads as missing.
    let hold = app.held(&[(id, 1)], None).await;
    let other = app.held(&[(id, 1)], None).await;
    let foreign = app
        .with_token(
            Method::GET,
            &format!("/v1/holds/{}", hold.id),
            Some(&other.access_token),
        )
        .await;
    assert_error(foreign, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(
        app.stored(id).await,
        (5, version + 2),
        "only the two good holds changed it"
    );
}

#[tokio::test]
async fn a_retried_hold_with_its_idempotency_key_sets_aside_once() {
    let app = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let id = app.create_product("HOLD-KEY", 5).await.id;
    let key = uuid::Uuid::new_v4().to_string();
    let send = || {
        reqwest::Client::new()
            .post(app.url("/v1/holds"))
            .header("Idempotency-Key", &key)
            .json(&json!({"items": [{"product_id": id, "quantity": 2}], "ttl_seconds": 60}))
            .send()
    };
    let first = send().await.unwrap();
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: HoldReceipt = ok(first, StatusCode::CREATED).await;
    let retry = send().await.unwrap();
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: HoldReceipt = ok(retry, StatusCode::CREATED).await;
    assert_eq!(
        (retry.id, retry.access_token),
        (first.id, first.access_token)
    );
    assert_eq!(app.counts(id).await, (5, 2, 3), "set aside once");
}

#[tokio::test]
async fn holds_orders_and_cancellations_work_through_every_strategy() {
    for strategy in [
        CacheStrategy::None,
        CacheStrategy::Ttl,
        CacheStrategy::Delete,
        CacheStrategy::Versioned,
    ] {
        let app = TestApp::builder()
            .strategy(strategy, SHARED_REDIS)
            .spawn()
            .await;
        let id = app.create_product("EVERY-1", 4).await.id;
        let hold = app.held(&[(id, 3)], Some(60)).await;
        let receipt: OrderReceipt = ok(
            app.order_from(&hold, Some(&hold.access_token)).await,
            StatusCode::CREATED,
        )
        .await;
        let cancelled: Order = ok(
            app.cancel(receipt.order.id, Some(&receipt.access_token))
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(cancelled.status, OrderStatus::Cancelled, "{strategy:?}");
        assert_eq!(app.stored(id).await.0, 4, "{strategy:?}");
        if strategy != CacheStrategy::Ttl {
            // `ttl` invalidates nothing: its reads are stale by design.
            assert_eq!(app.counts(id).await, (4, 0, 4), "{strategy:?}");
        }
    }
}

/// What a product's row keeps of its holds: one entry per second in which some lapse, whatever
/// the number of shoppers; releases and conversions take their units back out of it.
#[tokio::test]
async fn many_holds_on_one_product_make_one_schedule_entry_per_second() {
    let app = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let id = app.create_product("CROWD-1", 1_000).await.id;
    let one = [(id, 1)];
    let holds: Vec<HoldReceipt> = join_all((0..60).map(|_| app.held(&one, Some(600)))).await;
    for hold in &holds {
        assert_eq!(
            hold.expires_at.timestamp_subsec_millis(),
            0,
            "a hold expires at a whole second"
        );
    }
    let seconds: std::collections::BTreeSet<i64> = holds
        .iter()
        .map(|hold| hold.expires_at.timestamp())
        .collect();
    let entries = |app: &TestApp| {
        let pool = app.pool.clone();
        async move {
            let schedule: Value = sqlx::query_scalar("SELECT holds FROM products WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
            schedule.as_array().unwrap().clone()
        }
    };
    let schedule = entries(&app).await;
    assert_eq!(schedule.len(), seconds.len(), "{schedule:?}");
    let units: i64 = schedule
        .iter()
        .map(|e| e["quantity"].as_i64().unwrap())
        .sum();
    assert_eq!(units, 60);
    assert_eq!(app.counts(id).await, (1_000, 60, 940));

    // Released and converted holds leave; so does a second's entry with none left.
    for hold in &holds[..30] {
        let released = app
            .with_token(
                Method::DELETE,
                &format!("/v1/holds/{}", hold.id),
                Some(&hold.access_token),
            )
            .await;
        assert_eq!(released.status(), StatusCode::OK);
    }
    for hold in &holds[30..] {
        let order = app.order_from(hold, Some(&hold.access_token)).await;
        assert_eq!(order.status(), StatusCode::CREATED);
    }
    assert_eq!(app.counts(id).await, (970, 0, 970));
    assert_eq!(entries(&app).await, Vec::<Value>::new());
}

/// A copy lists the first few seconds of a product's schedule (`LISTED`, 4): when the seconds
/// it did not list begin to lapse, it is filled again from Postgres, and every read is exact.
#[tokio::test]
async fn a_copy_is_filled_again_when_the_holds_it_does_not_list_begin_to_lapse() {
    let app = TestApp::builder()
        .versioned(SHARED_REDIS)
        .with_config(|c| c.hold_sweep_interval = Duration::from_secs(3600))
        .spawn()
        .await;
    let id = app.create_product("SCHEDULE-1", 100).await.id;
    // Six holds lapsing in six different seconds (each made later and for one second longer).
    let mut expiries = Vec::new();
    for ttl in 1..=6 {
        expiries.push(app.held(&[(id, 1)], Some(ttl)).await.expires_at);
    }
    assert!(
        expiries.windows(2).all(|pair| pair[0] < pair[1]),
        "{expiries:?}"
    );
    let version = app.stored(id).await.1;
    let path = format!("/v1/products/{id}");
    let read = || async {
        let response = app.get(&path).await;
        let source = response.headers()["x-cache"].to_str().unwrap().to_string();
        let etag = response.headers()["etag"].to_str().unwrap().to_string();
        let product: Product = ok(response, StatusCode::OK).await;
        (source, etag, product.reserved)
    };
    app.get(&path).await; // fills the copy: it lists the first four seconds
    assert_eq!(read().await, ("hit".into(), format!("\"{version}\""), 6));

    // Past the fifth second the copy cannot tell what is held: filled again, exact.
    wait_past(expiries[4]).await;
    assert_eq!(read().await, ("miss".into(), format!("\"{version}-5\""), 1));
    assert_eq!(read().await, ("hit".into(), format!("\"{version}-5\""), 1));
    wait_past(expiries[5]).await;
    assert_eq!(read().await, ("hit".into(), format!("\"{version}-6\""), 0));
}

/// The migration that made schedules of the lists of holds the build before wrote: each
/// entry's units join the whole second after its expiry.
#[tokio::test]
async fn a_list_of_holds_becomes_a_schedule_by_the_second() {
    let app = TestApp::builder().spawn().await;
    let schedule: Value = sqlx::query_scalar("SELECT shopnow_holds_by_the_second($1::jsonb)")
        .bind(json!([
            {"hold": "00000000-0000-4000-8000-000000000001", "quantity": 2, "expires_at": 1_500},
            {"hold": "00000000-0000-4000-8000-000000000002", "quantity": 3, "expires_at": 1_999},
            {"hold": "00000000-0000-4000-8000-000000000003", "quantity": 1, "expires_at": 3_000},
        ]))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        schedule,
        json!([{"quantity": 5, "expires_at": 2_000}, {"quantity": 1, "expires_at": 3_000}])
    );
}

/// A rolling update from the build before holds by the second: the live holds it made (an
/// entry per hold on the product row, `expires_at` at any millisecond) carry over. The new
/// build counts them, and releases and converts them out of the right second.
#[tokio::test]
async fn the_live_holds_of_the_build_before_carry_over() {
    let db = std::sync::Arc::new(TestDatabase::create("shopnow_test").await.unwrap());
    // The migrations the build before had, from a directory of their own.
    let before = std::env::temp_dir().join(format!("shopnow-migrations-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&before).unwrap();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.as_str() < "20261207000002" {
            std::fs::copy(&path, before.join(&name)).unwrap();
        }
    }
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::migrate::Migrator::new(before.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    std::fs::remove_dir_all(&before).unwrap();

    // As the build before wrote them: two live holds (2 and 3 units, lapsing 0.3 s and 0.7 s
    // into a second ten minutes from now) and one that lapsed, each an entry of the row.
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO products (sku, name, price_cents, currency, stock) \
         VALUES ('CARRIED-1', 'Carried over', 100, 'USD', 10) RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let base_ms = (Utc::now().timestamp() + 600) * 1000;
    let holds = [
        ("00000000-0000-4000-8000-00000000000a", 2, base_ms + 300),
        ("00000000-0000-4000-8000-00000000000b", 3, base_ms + 700),
        ("00000000-0000-4000-8000-00000000000c", 1, base_ms - 601_000),
    ];
    let mut entries = Vec::new();
    for (hold, quantity, expires_ms) in holds {
        sqlx::query(
            "INSERT INTO holds (id, access_token, items, expires_at) \
             VALUES ($1::uuid, $1, $2::jsonb, to_timestamp($3::float8 / 1000))",
        )
        .bind(hold)
        .bind(json!([{"product_id": id, "quantity": quantity}]).to_string())
        .bind(expires_ms as f64)
        .execute(&pool)
        .await
        .unwrap();
        entries.push(json!({"hold": hold, "quantity": quantity, "expires_at": expires_ms}));
    }
    sqlx::query("UPDATE products SET holds = $2::jsonb WHERE id = $1")
        .bind(id)
        .bind(Value::Array(entries).to_string())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    // The new build migrates at its start.
    let app = TestApp::builder()
        .database(db)
        .versioned(SHARED_REDIS)
        .spawn()
        .await;
    assert_eq!(app.counts(id).await, (10, 5, 5));
    let (a, b) = (holds[0].0, holds[1].0);
    let hold: Value = ok(
        app.with_token(Method::GET, &format!("/v1/holds/{a}"), Some(a))
            .await,
        StatusCode::OK,
    )
    .await;
    let expires_at: DateTime<Utc> = serde_json::from_value(hold["expires_at"].clone()).unwrap();
    assert_eq!(
        expires_at.timestamp_millis(),
        base_ms + 1000,
        "rounded up to its whole second"
    );

    ok::<Value>(
        app.with_token(Method::DELETE, &format!("/v1/holds/{a}"), Some(a))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        app.counts(id).await,
        (10, 3, 7),
        "a released hold's units back"
    );
    let order = app
        .post_json("/v1/orders", json!({ "hold_id": b }), Some(b))
        .await;
    ok::<Value>(order, StatusCode::CREATED).await;
    assert_eq!(
        app.counts(id).await,
        (7, 0, 7),
        "a converted hold's units taken"
    );
}

/// An operator sees a product's live holds, page by page, and releases them all at once: each
/// whole (a hold of two products gives both back), a hold of another product kept.
#[tokio::test]
async fn an_operator_lists_a_products_holds_and_releases_them() {
    let app = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let a = app.create_product("HELD-A", 10).await.id;
    let b = app.create_product("HELD-B", 10).await.id;
    let other = app.create_product("HELD-OTHER", 10).await.id;
    app.held(&[(a, 2)], Some(600)).await;
    app.held(&[(a, 3)], Some(600)).await;
    app.held(&[(a, 1), (b, 4)], Some(600)).await;
    let kept = app.held(&[(other, 5)], Some(600)).await;
    let path = format!("/v1/products/{a}/holds");

    assert_error(
        app.get(&path).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let first: Value = ok(
        app.admin(Method::GET, &format!("{path}?limit=2"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let next = first["next"].as_str().expect("a next page").to_owned();
    let second: Value = ok(
        app.admin(Method::GET, &format!("{path}?limit=2&after={next}"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(second.get("next").is_none(), "{second}");
    let mut quantities: Vec<i64> = [&first, &second]
        .iter()
        .flat_map(|page| page["holds"].as_array().unwrap().clone())
        .map(|hold| hold["quantity"].as_i64().unwrap())
        .collect();
    quantities.sort_unstable();
    assert_eq!(quantities, [1, 2, 3]);
    assert_error(
        app.admin(Method::GET, &format!("{path}?limit=0"))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;

    let released: Value = ok(
        app.admin(Method::DELETE, &path).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(released["released"], 3);
    assert_eq!(app.counts(a).await, (10, 0, 10));
    assert_eq!(app.counts(b).await, (10, 0, 10), "released whole");
    assert_eq!(
        app.counts(other).await,
        (10, 5, 5),
        "another product's hold kept"
    );
    let hold: Value = ok(
        app.with_token(
            Method::GET,
            &format!("/v1/holds/{}", kept.id),
            Some(&kept.access_token),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(hold["status"], "held");
    let after: Value = ok(
        app.admin(Method::GET, &path).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(after["holds"], json!([]));
}
