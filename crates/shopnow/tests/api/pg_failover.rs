//! A Postgres failover that loses commits: a primary with an asynchronous standby, replication
//! held, the primary stopped, the standby promoted, the endpoint moved. The promoted database
//! hands out the lost versions' numbers again; a write acknowledged after the failover must
//! never be hidden by the copy of a lost one, and copies of lost writes stop being served within
//! the stated bound.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use shopnow::Product;
use testkit::{ReplicatedPostgres, TestDatabase};

use crate::helpers::{eventually, TestApp, SHARED_REDIS};

/// Stock, version and ETag of product `id` as `app` serves it.
async fn served(app: &TestApp, id: i64) -> (i64, i64, String) {
    let response = app.get(&format!("/v1/products/{id}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    let product: Product = response.json().await.unwrap();
    (product.stock, product.version, etag)
}

#[tokio::test]
async fn a_failover_that_lost_commits_never_hides_a_later_write() {
    let pg = tokio::task::spawn_blocking(ReplicatedPostgres::start)
        .await
        .unwrap()
        .expect("a primary and a standby");
    let name = format!("shopnow_failover_{}", uuid::Uuid::new_v4().simple());
    let db = Arc::new(TestDatabase {
        url: pg.url(&name),
        name,
    });
    let a = TestApp::builder()
        .database(db.clone())
        .versioned(SHARED_REDIS)
        .spawn()
        .await;
    let b = a.sibling().spawn().await;
    let rewritten = a.create_product("PGF-REWRITTEN", 1000).await.id;
    let lost = a.create_product("PGF-LOST", 1000).await.id;
    let kept = a.create_product("PGF-KEPT", 1000).await.id;
    for app in [&a, &b] {
        for id in [rewritten, lost, kept] {
            assert_eq!(served(app, id).await, (1000, 1, "\"1\"".to_string()));
        }
    }
    pg.wait_in_sync(Duration::from_secs(10)).unwrap();

    // Acknowledged by the primary, never sent to the standby.
    pg.hold_replication();
    assert_eq!(a.adjust(rewritten, -7).await.stock, 993);
    assert_eq!(a.adjust(lost, -5).await.stock, 995);
    assert_eq!(served(&b, rewritten).await, (993, 2, "\"2\"".to_string()));

    let pg = tokio::task::spawn_blocking(move || {
        let mut pg = pg;
        pg.fail_over().expect("failover");
        pg
    })
    .await
    .unwrap();
    assert_eq!(pg.timeline().unwrap(), 2);
    let failed_over = Instant::now();

    // The first write after the failover: the promoted database hands out version 2 again.
    // Until the instance's connections reach the promoted database, writes answer 503 (never
    // 500); bounded, in count and time.
    let mut written = None;
    for _ in 0..100 {
        let response = a
            .admin(
                Method::POST,
                &format!("/v1/products/{rewritten}/stock/adjustments"),
            )
            .json(&serde_json::json!({"delta": -1}))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::OK {
            written = Some(response.json::<Product>().await.unwrap());
            break;
        }
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let written = written.expect("a write succeeds on the promoted database");
    assert_eq!((written.stock, written.version), (999, 2));
    // From its acknowledgement, every instance serves it, with an ETag of its own.
    for app in [&a, &b] {
        assert_eq!(
            served(app, rewritten).await,
            (999, 2, "\"1.2\"".to_string())
        );
    }
    // A client holding the lost write's ETag gets the new content, not 304.
    let revalidated = b
        .client
        .get(b.url(&format!("/v1/products/{rewritten}")))
        .header("if-none-match", "\"2\"")
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), StatusCode::OK);

    // The lost write of a product nobody wrote since stops being served within the bound.
    let bound = shopnow::HISTORY_CONVERGENCE_BOUND + Duration::from_secs(1);
    let converged = eventually(bound, || async {
        let mut all = true;
        for app in [&a, &b] {
            all &= served(app, lost).await == (1000, 1, "\"1.1\"".to_string());
        }
        all
    })
    .await;
    assert!(
        converged.is_some(),
        "the lost write is still served {:?} after the failover: {:?} {:?}",
        failed_over.elapsed(),
        served(&a, lost).await,
        served(&b, lost).await
    );
    // And stays so; the untouched product reads as before, under the new history.
    for _ in 0..10 {
        for app in [&a, &b] {
            assert_eq!(served(app, lost).await.0, 1000);
            assert_eq!(served(app, kept).await, (1000, 1, "\"1.1\"".to_string()));
        }
    }
    drop((a, b));
    drop(db);
    drop(pg);
}
