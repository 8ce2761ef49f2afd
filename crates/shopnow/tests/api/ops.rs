use std::{process::Command, time::Duration};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

#[tokio::test]
async fn readiness_reports_dependencies_and_turns_503_while_draining() {
    let mut app = TestApp::builder()
        .with_config(|c| {
            // Long enough that the listener is still open while the test looks.
            c.http.drain_delay = Duration::from_secs(30);
            c.http.shutdown_timeout = Duration::from_secs(1);
        })
        .spawn()
        .await;

    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], "ok");

    let server = app.begin_shutdown();
    // Readiness flips as soon as the stop signal is seen; poll for that event, bounded.
    let mut status = StatusCode::OK;
    for _ in 0..100 {
        status = app.get("/readyz").await.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(body["status"], "draining");
    // Liveness is not readiness: a draining instance is alive.
    let alive = app.get("/livez").await;
    assert_eq!(alive.status(), StatusCode::OK);
    // Every answer during the drain closes its connection, so that no client sends another
    // request on a kept-alive connection just as the listener closes (a probe saw 1 to 6 of
    // those answered by a closed connection).
    assert_eq!(
        alive
            .headers()
            .get("connection")
            .and_then(|v| v.to_str().ok()),
        Some("close")
    );
    let product_read = app.get("/v1/products/1").await;
    assert_eq!(
        product_read
            .headers()
            .get("connection")
            .and_then(|v| v.to_str().ok()),
        Some("close"),
        "the product read, served past the router, too"
    );
    server.abort();
}

/// `instance_ready` says what `/readyz` last answered, and `readiness_changes_total` counts
/// every change, so that an alert sees a flapping instance even between two scrapes. A process
/// of its own: metrics are global to a process.
#[tokio::test]
async fn readiness_and_its_changes_are_metrics() {
    let app = TestApp::builder().spawn().await;
    let instance =
        crate::helpers::start_process(&app.config, &[("SHOPNOW_DRAIN_DELAY_MS", "30000")]);
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let request = client.get(format!("{}{path}", instance.url()));
        async move { request.send().await.unwrap() }
    };
    let metric = |text: &str, name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    for _ in 0..3 {
        assert_eq!(get("/readyz").await.status(), StatusCode::OK);
    }
    let text = get("/metrics").await.text().await.unwrap();
    assert_eq!(metric(&text, "instance_ready"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "readiness_changes_total"), Some(0.0));

    let pid = instance.pid().expect("running").to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let draining = crate::helpers::eventually(Duration::from_secs(5), || async {
        get("/readyz").await.status() == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(draining.is_some(), "readiness turns 503 on SIGTERM");
    let text = get("/metrics").await.text().await.unwrap();
    assert_eq!(metric(&text, "instance_ready"), Some(0.0));
    assert_eq!(metric(&text, "readiness_changes_total"), Some(1.0));
}

#[tokio::test]
async fn graceful_shutdown_finishes_and_stops_listening() {
    let mut app = TestApp::builder().spawn().await;
    assert_eq!(app.get("/livez").await.status(), StatusCode::OK);
    let server = app.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("shutdown is bounded")
        .unwrap()
        .unwrap();
    assert!(app.client.get(app.url("/livez")).send().await.is_err());
}

#[tokio::test]
async fn metrics_count_requests_by_matched_route() {
    let app = TestApp::builder().spawn().await;
    app.get("/v1/products/777").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total")
            && l.contains("route=\"/v1/products/{id}\"")
            && l.contains("status=\"404\"")),
        "{text}"
    );
    assert!(text.contains("http_request_duration_seconds_bucket"));
    assert!(
        !text.contains("route=\"/v1/products/777\""),
        "raw paths are not labels"
    );
}

#[tokio::test]
async fn invented_methods_and_paths_add_no_metric_series() {
    let app = TestApp::builder().spawn().await;
    for n in 0..50 {
        let method = reqwest::Method::from_bytes(format!("ZZ{n}").as_bytes()).unwrap();
        for path in [format!("/nope-{n}"), "/v1/products/1".to_string()] {
            let response = app
                .client
                .request(method.clone(), app.url(&path))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_client_error(), "{method} {path}");
        }
    }
    let text = app.get("/metrics").await.text().await.unwrap();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .collect();
    assert!(
        !text.contains("ZZ") && !text.contains("/nope"),
        "a client's method or path became a label"
    );
    assert!(
        series
            .iter()
            .any(|l| l.contains("method=\"other\"") && l.contains("route=\"unmatched\"")),
        "{series:?}"
    );
}

#[tokio::test]
async fn the_request_id_is_echoed_or_made() {
    let app = TestApp::builder().spawn().await;
    let given = app
        .client
        .get(app.url("/livez"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "abc-123");
    let made = app.get("/livez").await;
    assert_eq!(made.headers()["x-request-id"].len(), 36, "a UUID");
}

/// The OpenAPI document is a reviewed artifact: a change to the API shows in the diff of
/// `tests/api/snapshots/`. Review a change with `cargo insta review` (or accept it with
/// `INSTA_UPDATE=always cargo test`).
#[tokio::test]
async fn the_openapi_document_matches_its_snapshot() {
    let app = TestApp::builder().spawn().await;
    let served: Value = app.get("/openapi.json").await.json().await.unwrap();
    let generated = serde_json::to_value(shopnow::openapi_document()).unwrap();
    assert_eq!(served, generated);
    for path in [
        "/v1/products",
        "/v1/products/{id}",
        "/v1/products/{id}/stock",
        "/v1/products/{id}/stock/adjustments",
        "/v1/orders",
        "/v1/orders/{id}",
        "/livez",
        "/readyz",
        "/metrics",
    ] {
        assert!(served["paths"][path].is_object(), "{path} is documented");
    }
    insta::assert_json_snapshot!("openapi", served);
}

#[tokio::test]
async fn the_docs_page_and_its_assets_are_served_locally() {
    let app = TestApp::builder().spawn().await;
    let page = app.get("/docs/").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("cdn") && !html.contains("unpkg"),
        "no CDN: {html}"
    );
    for asset in [
        "/docs/swagger-ui.css",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-initializer.js",
    ] {
        let response = app.get(asset).await;
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert!(response.bytes().await.unwrap().len() > 100);
    }
}

#[tokio::test]
async fn healthcheck_passes_while_serving_and_fails_when_nothing_answers() {
    let app = TestApp::builder().spawn().await;
    let addr = app.address.trim_start_matches("http://").parse().unwrap();
    shopnow::healthcheck(addr)
        .await
        .expect("serving instance is live");

    // A port that was free a moment ago and that nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert!(shopnow::healthcheck(free).await.is_err());
}

#[test]
fn an_invalid_setting_stops_start_up_naming_the_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_shopnow"))
        .arg("serve")
        .env("SHOPNOW_CACHE_STRATEGY", "sometimes")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SHOPNOW_CACHE_STRATEGY"), "{stderr}");
}

/// Compose and Kubernetes start replicas together: on a database nobody created yet, every one
/// of them must come up (creating a database another instance created a moment earlier is
/// success, and migrations take turns).
#[tokio::test]
async fn instances_started_together_on_a_fresh_database_all_come_up() {
    for round in 0..5 {
        let first = TestApp::builder();
        let database = first.shared_database();
        let builders = [
            first,
            TestApp::builder().database(database.clone()),
            TestApp::builder().database(database),
        ];
        let started = futures::future::join_all(builders.map(|b| b.try_spawn())).await;
        for (n, app) in started.into_iter().enumerate() {
            let app = app.unwrap_or_else(|e| panic!("round {round}: instance {n} died: {e:#}"));
            assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
        }
    }
}

/// By default an instance logs what an operator acts on: no line for a request that went well,
/// one line for a server error, carrying the request id and the status.
#[tokio::test]
async fn by_default_only_server_errors_and_slow_requests_are_logged() {
    let app = TestApp::builder().spawn().await;
    let id = app.insert_cold_product("LOGGED-1", 5).await;
    let instance =
        crate::helpers::start_process(&app.config, &[("SHOPNOW_REQUEST_TIMEOUT_MS", "300")]);
    let client = reqwest::Client::new();
    for _ in 0..100 {
        let live = client
            .get(format!("{}/livez", instance.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(live.status(), StatusCode::OK);
    }
    // A stock write on a row the test holds locked outlives the request timeout: 503.
    let mut holder = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM products WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *holder)
        .await
        .unwrap();
    let failed = client
        .put(format!("{}/v1/products/{id}/stock", instance.url()))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .header("x-request-id", "find-me-1")
        .json(&serde_json::json!({"stock": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
    holder.rollback().await.unwrap();

    // The access line is written after the response; wait for it, bounded.
    let logged = crate::helpers::eventually(Duration::from_secs(5), || async {
        instance
            .log()
            .iter()
            .any(|l| l["request_id"] == "find-me-1")
    })
    .await;
    assert!(logged.is_some(), "the server error was logged");
    let log = instance.log();
    let access: Vec<&Value> = log.iter().filter(|l| l["request_id"].is_string()).collect();
    assert_eq!(
        access.len(),
        1,
        "one access line, for the error: {access:?}"
    );
    assert_eq!(access[0]["status"], 503);
    // A 503 (a timeout, load shed, a dependency away) is a warning; a 500 would be an error.
    assert_eq!(access[0]["level"], "WARN");
    assert_eq!(access[0]["uri"], format!("/v1/products/{id}/stock"));
}
