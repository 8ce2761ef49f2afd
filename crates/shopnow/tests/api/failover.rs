//! Redis with a replica: a failover to a replica that never received a publish must not bring
//! back an older version once the failover is done and the repair bound has passed.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use shopnow::Product;
use testkit::ReplicatedRedis;

use crate::helpers::{eventually, TestApp};

/// Every read of `id` on `apps`: its status, whether the cache served it, and its version.
async fn read_everywhere(apps: [&TestApp; 2], id: i64) -> Vec<(StatusCode, bool, Option<i64>)> {
    let mut reads = Vec::new();
    for app in apps {
        let response = app.get(&format!("/v1/products/{id}")).await;
        let status = response.status();
        let cached = response.headers()["x-cache"] != "bypass";
        let version = response.json::<Product>().await.ok().map(|p| p.version);
        reads.push((status, cached, version));
    }
    reads
}

#[tokio::test]
async fn a_failover_to_a_replica_that_missed_a_publish_brings_back_no_older_version() {
    failover_brings_back_no_older_version(1).await;
}

/// An operator who forgets `SHOPNOW_REDIS_REPLICAS` gets the same: the instance sees the
/// replica and waits for it anyway.
#[tokio::test]
async fn replicas_are_waited_for_even_when_the_setting_forgets_them() {
    failover_brings_back_no_older_version(0).await;
}

async fn failover_brings_back_no_older_version(replicas_setting: u32) {
    let mut redis = ReplicatedRedis::start().await;
    let a = TestApp::builder()
        .versioned(&redis.url())
        .with_config(|c| c.redis.replicas = replicas_setting)
        .spawn()
        .await;
    let b = a.sibling().spawn().await;
    let id = a.create_product("FAILOVER-1", 100).await.id;
    for app in [&a, &b] {
        assert_eq!(app.product(id).await.version, 1, "cached at version 1");
    }
    // Replication is asynchronous: wait until the replica holds that copy too.
    let key = a.copy_key(id);
    let replica = redis.replica_connection().await;
    let replicated = eventually(Duration::from_secs(5), || {
        let (key, mut replica) = (key.clone(), replica.clone());
        async move {
            let copy: Option<Vec<u8>> =
                redis::AsyncCommands::get(&mut replica, &key).await.unwrap();
            crate::cache::stored_version(copy) == Some(1)
        }
    })
    .await;
    assert!(replicated.is_some(), "the replica holds version 1");
    // With the replica in sync, publishes are confirmed and their outbox rows go.
    let confirmed = eventually(Duration::from_secs(5), || async {
        a.outbox_rows().await == 0
    })
    .await;
    assert!(
        confirmed.is_some(),
        "confirmed publishes leave no outbox row"
    );

    // The replica stops receiving; version 2 is acknowledged (the primary has it).
    redis.hold_replication();
    assert_eq!(a.adjust(id, -1).await.version, 2);
    for app in [&a, &b] {
        assert_eq!(app.product(id).await.version, 2);
    }

    // The primary dies before the replica got version 2; the replica takes over.
    redis.fail_over().await;
    let failed_over = Instant::now();
    let repaired = eventually(Duration::from_secs(5), || async {
        let reads = read_everywhere([&a, &b], id).await;
        for (status, ..) in &reads {
            assert!(
                !status.is_server_error(),
                "no 5xx during a failover: {reads:?}"
            );
        }
        // Served by the new primary's cache, not bypassed to Postgres.
        reads
            .iter()
            .all(|read| *read == (StatusCode::OK, true, Some(2)))
    })
    .await;
    assert!(
        repaired.is_some(),
        "version 2 is served again after the failover: {:?}",
        read_everywhere([&a, &b], id).await
    );
    let bound = shopnow::REPAIR_BOUND + shopnow::RELAY_GRACE + Duration::from_secs(1);
    assert!(
        failed_over.elapsed() < bound,
        "within {bound:?}: {:?}",
        failed_over.elapsed()
    );
    // And it stays so.
    for _ in 0..20 {
        for (status, _, version) in read_everywhere([&a, &b], id).await {
            assert_eq!((status, version), (StatusCode::OK, Some(2)));
        }
    }
    // The new primary's replica confirmed the republish: nothing is left to repair.
    let settled = eventually(Duration::from_secs(5), || async {
        a.outbox_rows().await == 0
    })
    .await;
    assert!(
        settled.is_some(),
        "the outbox empties once a replica confirms"
    );
}
