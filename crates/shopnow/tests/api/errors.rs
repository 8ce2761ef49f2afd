//! Bad input gets a clear JSON error and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{assert_error, TestApp};

#[tokio::test]
async fn admin_writes_need_the_token() {
    let app = TestApp::builder().spawn().await;
    let id = app.create_product("AUTH-1", 3).await.id;
    let path = app.url(&format!("/v1/products/{id}/stock"));

    let missing = app
        .client
        .put(&path)
        .json(&json!({"stock": 0}))
        .send()
        .await
        .unwrap();
    assert_error(missing, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let wrong = app
        .client
        .put(&path)
        .bearer_auth("guess")
        .json(&json!({"stock": 0}))
        .send()
        .await
        .unwrap();
    assert_error(wrong, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(app.stored(id).await, (3, 1));
}

#[tokio::test]
async fn without_a_configured_token_admin_writes_are_forbidden() {
    let app = TestApp::builder()
        .with_config(|c| c.admin_token = None)
        .spawn()
        .await;
    let response = app
        .admin(Method::POST, "/v1/products")
        .json(&json!({"sku": "X", "name": "x", "price_cents": 1}))
        .send()
        .await
        .unwrap();
    let body = assert_error(response, StatusCode::FORBIDDEN, "admin_disabled").await;
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("SHOPNOW_ADMIN_TOKEN"));
    // Orders need no token.
    assert_error(
        app.order(&[(1, 1)], None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn bad_bodies_get_json_errors_and_change_nothing() {
    let app = TestApp::builder().spawn().await;
    let id = app.create_product("BAD-1", 3).await.id;
    let stock = format!("/v1/products/{id}/stock");

    let malformed = app
        .admin(Method::PUT, &stock)
        .header("content-type", "application/json")
        .body("{\"stock\": ")
        .send()
        .await
        .unwrap();
    assert_error(malformed, StatusCode::BAD_REQUEST, "malformed_json").await;

    for body in [
        json!({"stock": -1}),
        json!({"stock": "ten"}),
        json!({}),
        json!({"stock": 1, "extra": true}),
    ] {
        let response = app
            .admin(Method::PUT, &stock)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    }
    // The most negative delta: its absolute value does not exist in i64.
    let adjustments = format!("/v1/products/{id}/stock/adjustments");
    for delta in ["-9223372036854775808", "9223372036854775807", "0"] {
        let response = app
            .admin(Method::POST, &adjustments)
            .header("content-type", "application/json")
            .body(format!("{{\"delta\": {delta}}}"))
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    }
    let no_type = app
        .admin(Method::PUT, &stock)
        .body("{\"stock\": 1}")
        .send()
        .await
        .unwrap();
    assert_error(
        no_type,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;

    let huge = format!("{{\"stock\": 1, \"pad\": \"{}\"}}", "x".repeat(200_000));
    let too_large = app
        .admin(Method::PUT, &stock)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_error(
        too_large,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;

    for body in [
        json!({"items": []}),
        json!({"items": [{"product_id": id, "quantity": 0}]}),
        json!({"items": [{"product_id": id}]}),
        json!({"items": [{"product_id": id, "quantity": 1.5}]}),
    ] {
        let response = app
            .client
            .post(app.url("/v1/orders"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    }
    let overflow =
        format!("{{\"items\": [{{\"product_id\": {id}, \"quantity\": 99999999999999999999}}]}}");
    let response = app
        .client
        .post(app.url("/v1/orders"))
        .header("content-type", "application/json")
        .body(overflow)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;

    let bad_key = app
        .client
        .post(app.url("/v1/orders"))
        .header("Idempotency-Key", "")
        .json(&json!({"items": [{"product_id": id, "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_error(bad_key, StatusCode::BAD_REQUEST, "invalid_idempotency_key").await;

    assert_eq!(app.stored(id).await, (3, 1), "nothing changed");
}

#[tokio::test]
async fn a_duplicate_sku_is_a_conflict() {
    let app = TestApp::builder().spawn().await;
    app.create_product("DUP-1", 1).await;
    let response = app
        .admin(Method::POST, "/v1/products")
        .json(&json!({"sku": "DUP-1", "name": "again", "price_cents": 1}))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::CONFLICT, "duplicate_sku").await;
    for body in [
        json!({"sku": "", "name": "x", "price_cents": 1}),
        json!({"sku": "OK", "name": "x", "price_cents": -1}),
        json!({"sku": "OK", "name": "x", "price_cents": 1, "currency": "dollars"}),
    ] {
        let response = app
            .admin(Method::POST, "/v1/products")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    }
}

/// The documentation pages answer as the API does: JSON for a page that is not there, and a
/// JSON body with the redirect from `/docs` to `/docs/`.
#[tokio::test]
async fn the_docs_answer_json_where_they_have_no_page() {
    let app = TestApp::builder().spawn().await;
    assert_error(
        app.get("/docs/no-such-page").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let unfollowed = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = unfollowed.get(app.url("/docs")).send().await.unwrap();
    assert!(redirect.status().is_redirection(), "{}", redirect.status());
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    let body: serde_json::Value = redirect.json().await.unwrap();
    assert_eq!(body["location"], location.as_str());
    // The pages themselves are untouched.
    assert_eq!(app.get("/docs/").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_ids_and_methods_answer_json() {
    let app = TestApp::builder().spawn().await;
    assert_error(app.get("/nope").await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(
        app.get("/v1/products/abc").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // The parser's words stay inside: a NUL in the id is "no such resource", nothing more.
    let body = assert_error(
        app.get("/v1/products/%00").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let message = body["message"].as_str().unwrap();
    assert!(
        !message.contains("parse") && !message.contains("i64"),
        "{message}"
    );
    assert_error(
        app.get("/v1/products/99999999999999999999").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.get("/v1/products/12345").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let put = app.client.put(app.url("/v1/orders")).send().await.unwrap();
    assert_error(put, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}
