//! An instance cut off from Redis while another reaches it (a partition that silently drops its
//! packets): what it writes is handed to the other instance's relay and published before the
//! write is acknowledged, so no instance serves an older copy once the client has its answer.

use testkit::TcpProxy;

use crate::helpers::{TestApp, SHARED_REDIS};

#[tokio::test]
async fn a_write_acknowledged_by_an_instance_cut_off_from_redis_is_served_everywhere() {
    let reaching = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let link = TcpProxy::start("127.0.0.1:6379".parse().unwrap());
    let cut_off = reaching
        .sibling()
        .with_config(|c| c.redis.urls = vec![format!("redis://{}", link.address())])
        .spawn()
        .await;
    let id = reaching.create_product("CUT-OFF-1", 100).await.id;
    for app in [&reaching, &cut_off] {
        assert_eq!(app.product(id).await.version, 1, "cached at version 1");
    }

    // Every byte between the instance and Redis now waits in the proxy, both ways: its calls
    // time out, its connection stays open.
    link.hold();
    for expected in 2..=4 {
        assert_eq!(cut_off.adjust(id, -1).await.version, expected);
        let response = reaching.get(&format!("/v1/products/{id}")).await;
        assert_eq!(
            response.headers()["x-cache"],
            "hit",
            "the other instance serves it from Redis"
        );
        let served: shopnow::Product = response.json().await.unwrap();
        assert_eq!(
            served.version, expected,
            "once acknowledged, the write is what Redis serves"
        );
        let response = cut_off.get(&format!("/v1/products/{id}")).await;
        assert_eq!(response.headers()["x-cache"], "bypass");
        let served: shopnow::Product = response.json().await.unwrap();
        assert_eq!(served.version, expected);
    }
    assert_eq!(reaching.outbox_rows().await, 0, "the other relay took them");
    link.forward();
}
