//! Group commit: the writes of one product waiting on an instance commit in one transaction,
//! each still all or nothing, and a hot product is never oversold.

use std::sync::Arc;

use futures::{future::join_all, FutureExt};
use reqwest::{Method, Response, StatusCode};
use serde_json::json;
use shopnow::{Hooks, PublishSite};
use tokio::sync::{mpsc, watch};

use crate::{
    helpers::{assert_error, ok, TestApp, ADMIN_TOKEN, SHARED_REDIS},
    holds::HoldReceipt,
};

impl TestApp {
    async fn adjustment(&self, id: i64, delta: i64) -> Response {
        self.admin(
            Method::POST,
            &format!("/v1/products/{id}/stock/adjustments"),
        )
        .json(&json!({ "delta": delta }))
        .send()
        .await
        .unwrap()
    }
}

/// Hooks that report each write-through publish reached and hold it while `open` is false,
/// and report how many writes of a product wait for their group.
fn publishes_held_until(
    open: watch::Receiver<bool>,
    reached: mpsc::UnboundedSender<i64>,
    waiting: watch::Sender<usize>,
) -> Hooks {
    let waiting = Arc::new(waiting);
    Hooks {
        before_publish: Some(Arc::new(move |(site, id): (PublishSite, i64)| {
            let mut open = open.clone();
            let reached = reached.clone();
            async move {
                if site == PublishSite::WriteThrough {
                    let _ = reached.send(id);
                    let _ = open.wait_for(|open| *open).await;
                }
            }
            .boxed()
        })),
        write_queued: Some(Arc::new(move |(_, queued): (i64, usize)| {
            waiting.send_modify(|most| *most = (*most).max(queued));
            async {}.boxed()
        })),
        ..Default::default()
    }
}

/// While a write of a product is being published, eight more arrive: they wait for it, then
/// commit together in one transaction (every hold among them has the same `created_at`, the
/// transaction's start) and one publish. The two that cannot succeed (an adjustment below zero,
/// a hold of more than is available) fail alone with 409; the six others are all applied.
#[tokio::test]
async fn writes_waiting_for_their_product_commit_together_and_each_fails_alone() {
    let (open, opened) = watch::channel(true);
    let (reached, mut publishes) = mpsc::unbounded_channel();
    let (waiting, mut queued) = watch::channel(0);
    let app = TestApp::builder()
        .versioned(SHARED_REDIS)
        .hooks(publishes_held_until(opened, reached, waiting))
        .spawn()
        .await;
    let id = app.create_product("GROUP-1", 10).await.id;
    let earlier = app.held(&[(id, 1)], Some(600)).await;
    // The create's and the earlier hold's publishes went through.
    while publishes.try_recv().is_ok() {}

    open.send_replace(false);
    let (first, (first_version, together)) = futures::join!(app.adjustment(id, 1), async {
        // The first adjustment committed alone; its publish is held, and its product's
        // runner with it.
        assert_eq!(publishes.recv().await, Some(id));
        let first_version = app.stored(id).await.1;
        let let_go = async {
            queued
                .wait_for(|waiting| *waiting >= 8)
                .await
                .expect("eight writes queued");
            open.send_replace(true);
        };
        let (one, hundred, two) = ([(id, 1)], [(id, 100)], [(id, 2)]);
        let (holds, too_many, order, conversion, up, below_zero, ()) = futures::join!(
            join_all((0..3).map(|_| app.hold(&one, Some(600)))),
            app.hold(&hundred, Some(600)),
            app.order(&two, None),
            app.order_from(&earlier, Some(&earlier.access_token)),
            app.adjustment(id, 5),
            app.adjustment(id, -100),
            let_go
        );
        (
            first_version,
            (holds, too_many, order, conversion, up, below_zero),
        )
    });

    ok::<serde_json::Value>(first, StatusCode::OK).await;
    let (holds, too_many, order, conversion, up, below_zero) = together;
    let mut created_at = Vec::new();
    for hold in holds {
        created_at.push(
            ok::<HoldReceipt>(hold, StatusCode::CREATED)
                .await
                .created_at,
        );
    }
    created_at.dedup();
    assert_eq!(
        created_at.len(),
        1,
        "the three holds made in one transaction"
    );
    assert_error(too_many, StatusCode::CONFLICT, "insufficient_stock").await;
    ok::<serde_json::Value>(order, StatusCode::CREATED).await;
    ok::<serde_json::Value>(conversion, StatusCode::CREATED).await;
    ok::<serde_json::Value>(up, StatusCode::OK).await;
    assert_error(below_zero, StatusCode::CONFLICT, "insufficient_stock").await;

    // Stock 10 + 1 + 5 - 2 (the order) - 1 (the earlier hold's order); the three new holds
    // set aside 3.
    assert_eq!(app.counts(id).await, (13, 3, 10));
    let (stock, version) = app.stored(id).await;
    assert_eq!(stock, 13);
    assert_eq!(
        version,
        first_version + 6,
        "one version per applied write, none for the two refused"
    );
    assert_eq!(app.product(id).await.version, version, "published at once");
}

/// A storm of holds, orders and adjustments of ONE product over two instances: whatever runs
/// together, the product is never oversold, and every instance reads what was acknowledged.
#[tokio::test]
async fn a_storm_of_mixed_writes_on_one_product_over_two_instances_never_oversells() {
    let a = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let b = a.sibling().spawn().await;
    let id = a.create_product("GROUP-STORM", 100).await.id;
    let responses = join_all((0..360).map(|n| {
        let app = if n % 2 == 0 { &a } else { &b };
        async move {
            let response = match n % 3 {
                0 => app.hold(&[(id, 1)], Some(600)).await,
                1 => app.order(&[(id, 1)], None).await,
                _ => app.adjustment(id, -1).await,
            };
            (n % 3, response)
        }
    }))
    .await;
    let mut applied = [0i64; 3];
    for (kind, response) in responses {
        match response.status() {
            StatusCode::CREATED | StatusCode::OK => applied[kind] += 1,
            StatusCode::CONFLICT => {
                assert_error(response, StatusCode::CONFLICT, "insufficient_stock").await;
            }
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
    }
    let [held, ordered, adjusted] = applied;
    assert_eq!(held + ordered + adjusted, 100, "every unit taken once");
    let expected = (100 - ordered - adjusted, held, 0);
    assert_eq!(a.counts(id).await, expected);
    assert_eq!(b.counts(id).await, expected);
    assert_eq!(a.stored(id).await.0, expected.0);
}

/// An order of a hold that does not exist is 404, whatever its token: the look-up of its
/// products (for its group) says nothing either.
#[tokio::test]
async fn an_order_of_an_unknown_hold_is_not_found() {
    let app = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let response = app
        .client()
        .post(app.url("/v1/orders"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "hold_id": "00000000-0000-4000-8000-000000000000" }))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
}
