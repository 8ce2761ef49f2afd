//! The OpenAPI document is a contract a generated client trusts: every status an operation was
//! seen answering in the tests is one it documents.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{TestApp, ADMIN_TOKEN};

/// Sends requests that make every operation answer each outcome a client can cause.
async fn exercise_every_operation(app: &TestApp) {
    let id = app.create_product("DOC-1", 5).await.id;
    let products = format!("/v1/products/{id}");
    let stock = format!("{products}/stock");
    let adjustments = format!("{products}/stock/adjustments");
    let send = |method: Method, path: &str, body: Option<&str>, token: bool| {
        let mut request = app.client.request(method, app.url(path));
        if token {
            request = request.bearer_auth(ADMIN_TOKEN);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        request.send()
    };
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(100_000));
    for path in [
        "/v1/products",
        products.as_str(),
        stock.as_str(),
        adjustments.as_str(),
    ] {
        let write = if path == "/v1/products" {
            Method::POST
        } else if path == stock {
            Method::PUT
        } else if path == products {
            Method::PATCH
        } else {
            Method::POST
        };
        send(write.clone(), path, Some("{}"), false).await.unwrap(); // 401
        send(write.clone(), path, Some("{\"x\": "), true)
            .await
            .unwrap(); // 400
        send(write.clone(), path, Some("{}"), true).await.unwrap(); // 422
        send(write.clone(), path, Some(&big), true).await.unwrap(); // 413
        app.client
            .request(write, app.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .body("{}")
            .send()
            .await
            .unwrap(); // 415
    }
    let dup = json!({"sku": "DOC-1", "name": "x", "price_cents": 1}).to_string();
    send(Method::POST, "/v1/products", Some(&dup), true)
        .await
        .unwrap(); // 409
    let missing = "/v1/products/999999";
    for (method, path, body) in [
        (Method::GET, missing.to_string(), None),
        (Method::PATCH, missing.to_string(), Some(r#"{"name": "n"}"#)),
        (Method::DELETE, missing.to_string(), None),
        (
            Method::PUT,
            format!("{missing}/stock"),
            Some(r#"{"stock": 1}"#),
        ),
        (
            Method::POST,
            format!("{missing}/stock/adjustments"),
            Some(r#"{"delta": 1}"#),
        ),
    ] {
        send(method, &path, body, true).await.unwrap(); // 404
    }
    send(Method::POST, &adjustments, Some(r#"{"delta": -99}"#), true)
        .await
        .unwrap(); // 409
    send(
        Method::PATCH,
        &products,
        Some(r#"{"name": "Renamed"}"#),
        true,
    )
    .await
    .unwrap(); // 200
    send(Method::PUT, &stock, Some(r#"{"stock": 50}"#), true)
        .await
        .unwrap(); // 200
    send(Method::POST, &adjustments, Some(r#"{"delta": -1}"#), true)
        .await
        .unwrap(); // 200
    let etag = app.get(&products).await.headers()["etag"].clone(); // 200
    app.client
        .get(app.url(&products))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap(); // 304
    app.get("/v1/products?limit=0").await; // 422
    app.get("/v1/products?limit=5").await; // 200

    let receipt = app.placed_order(&[(id, 1)]).await; // 201
    app.order(&[(id, 1)], Some("short")).await; // 400
    app.order(&[(999_999, 1)], None).await; // 404
    app.order(&[(id, 10_000)], None).await; // 409
    app.order(&[], None).await; // 422
    let key = "doc-order-key-0000-0001";
    app.order(&[(id, 1)], Some(key)).await; // 201
    app.order(&[(id, 1)], Some(key)).await; // 201 replayed
    app.read_order(receipt.order.id, None).await; // 401
    app.read_order(receipt.order.id, Some("wrong")).await; // 404
    app.read_order(receipt.order.id, Some(&receipt.access_token))
        .await; // 200
    let cancel = format!("/v1/orders/{}/cancel", receipt.order.id);
    app.client.post(app.url(&cancel)).send().await.unwrap(); // 401
    let with_token = |method: Method, path: &str, token: &str, body: Option<Value>| {
        let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    with_token(Method::POST, &cancel, "wrong", None)
        .await
        .unwrap(); // 404
    with_token(Method::POST, &cancel, &receipt.access_token, None)
        .await
        .unwrap(); // 200

    let hold = |body: Value| app.client.post(app.url("/v1/holds")).json(&body).send();
    let held: Value = hold(json!({"items": [{"product_id": id, "quantity": 1}]}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap(); // 201
    hold(json!({"items": [{"product_id": id, "quantity": 1}], "ttl_seconds": 0}))
        .await
        .unwrap(); // 422
    hold(json!({"items": [{"product_id": 999_999, "quantity": 1}]}))
        .await
        .unwrap(); // 404
    hold(json!({"items": [{"product_id": id, "quantity": 9_999}]}))
        .await
        .unwrap(); // 409
    app.client
        .post(app.url("/v1/holds"))
        .body("{}")
        .send()
        .await
        .unwrap(); // 415
    let (hold_id, token) = (
        held["id"].as_str().unwrap(),
        held["access_token"].as_str().unwrap(),
    );
    let hold_path = format!("/v1/holds/{hold_id}");
    app.get(&hold_path).await; // 401
    with_token(Method::GET, &hold_path, "wrong", None)
        .await
        .unwrap(); // 404
    with_token(Method::GET, &hold_path, token, None)
        .await
        .unwrap(); // 200
    let from_hold = json!({ "hold_id": hold_id });
    app.client
        .post(app.url("/v1/orders"))
        .json(&from_hold)
        .send()
        .await
        .unwrap(); // 401
    with_token(Method::POST, "/v1/orders", token, Some(from_hold.clone()))
        .await
        .unwrap(); // 201
    with_token(Method::POST, "/v1/orders", token, Some(from_hold))
        .await
        .unwrap(); // 409 hold_converted
    with_token(Method::DELETE, &hold_path, token, None)
        .await
        .unwrap(); // 409
    with_token(Method::DELETE, &hold_path, "wrong", None)
        .await
        .unwrap(); // 404
    let other: Value = hold(json!({"items": [{"product_id": id, "quantity": 1}]}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    with_token(
        Method::DELETE,
        &format!("/v1/holds/{}", other["id"].as_str().unwrap()),
        other["access_token"].as_str().unwrap(),
        None,
    )
    .await
    .unwrap(); // 200
    app.delete_product(id).await; // 204

    for path in ["/livez", "/readyz", "/metrics"] {
        app.get(path).await;
    }
    let long = format!("/v1/products?after=1&q={}", "q".repeat(9_000));
    app.get(&long).await; // 414
    app.client
        .get(app.url("/livez"))
        .header("x-padding", "p".repeat(20_000))
        .send()
        .await
        .unwrap(); // 431
}

#[tokio::test]
async fn every_status_observed_is_documented_for_its_operation() {
    let app = TestApp::builder().spawn().await;
    exercise_every_operation(&app).await;
    let disabled = TestApp::builder()
        .with_config(|c| c.admin_token = None)
        .spawn()
        .await;
    let forbidden = disabled
        .client
        .post(disabled.url("/v1/products"))
        .bearer_auth("anything")
        .json(&json!({"sku": "X", "name": "x", "price_cents": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);

    let document: Value = app.get("/openapi.json").await.json().await.unwrap();
    // The metrics count every request of this process by method, matched route and status:
    // this test's, and those of every test that ran before it.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let mut checked = 0;
    let mut undocumented = Vec::new();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
    {
        let label = |name: &str| {
            let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            line[start..].split('"').next().unwrap().to_string()
        };
        let (method, route, status) = (
            label("method").to_lowercase(),
            label("route"),
            label("status"),
        );
        let Some(operation) = document["paths"][&route][&method].as_object() else {
            continue; // not an operation of the API (the docs page, an unknown method or route)
        };
        checked += 1;
        if !operation["responses"]
            .as_object()
            .unwrap()
            .contains_key(&status)
        {
            undocumented.push(format!("{method} {route} answered {status}"));
        }
    }
    assert!(
        checked >= 40,
        "only {checked} (operation, status) pairs were seen"
    );
    assert!(undocumented.is_empty(), "undocumented: {undocumented:#?}");
}
