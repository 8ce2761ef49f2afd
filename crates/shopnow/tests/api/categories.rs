//! Categories and category pages: the tree's rules, list pages with filters, sorts and cursors,
//! and the promise of product reads carried to pages (fresh items, right membership, no
//! Postgres on a warm page, other categories' pages untouched by a write).

use std::sync::atomic::Ordering;

use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use shopnow::Product;

use crate::helpers::{assert_error, ok, TestApp, SHARED_REDIS};

#[derive(Debug, Deserialize)]
struct Page {
    items: Vec<Product>,
    next_cursor: Option<String>,
}

async fn create_category(app: &TestApp, slug: &str, parent: Option<&str>) -> Response {
    app.admin(Method::POST, "/v1/categories")
        .json(&json!({"slug": slug, "name": format!("Name of {slug}"), "parent": parent}))
        .send()
        .await
        .unwrap()
}

/// A product at `price` cents in `categories`.
async fn product_in(
    app: &TestApp,
    sku: &str,
    price: i64,
    stock: i64,
    categories: &[&str],
) -> Product {
    let response = app
        .admin(Method::POST, "/v1/products")
        .json(
            &json!({"sku": sku, "name": format!("Item {sku}"), "price_cents": price,
            "stock": stock, "categories": categories}),
        )
        .send()
        .await
        .unwrap();
    ok(response, StatusCode::CREATED).await
}

async fn page(app: &TestApp, query: &str) -> (Page, String) {
    let response = app.get(&format!("/v1/products?{query}")).await;
    let cache = response.headers()["x-cache"].to_str().unwrap().to_owned();
    (ok(response, StatusCode::OK).await, cache)
}

fn ids(page: &Page) -> Vec<i64> {
    page.items.iter().map(|p| p.id).collect()
}

/// apparel > t-shirts, apparel > hoodies; home.
async fn small_tree(app: &TestApp) {
    for (slug, parent) in [
        ("apparel", None),
        ("t-shirts", Some("apparel")),
        ("hoodies", Some("apparel")),
        ("home", None),
    ] {
        assert_eq!(
            create_category(app, slug, parent).await.status(),
            StatusCode::CREATED
        );
    }
}

#[tokio::test]
async fn the_tree_keeps_its_shape_and_says_why_a_change_is_refused() {
    let app = TestApp::builder().spawn().await;
    small_tree(&app).await;
    let tree: Vec<Value> = ok(app.get("/v1/categories").await, StatusCode::OK).await;
    let slugs: Vec<&str> = tree.iter().map(|c| c["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["apparel", "home", "hoodies", "t-shirts"]);
    let apparel: Value = ok(app.get("/v1/categories/apparel").await, StatusCode::OK).await;
    assert_eq!(apparel["children"], json!(["hoodies", "t-shirts"]));
    assert_eq!(apparel["parent"], Value::Null);

    assert_error(
        create_category(&app, "apparel", None).await,
        StatusCode::CONFLICT,
        "category_conflict",
    )
    .await;
    assert_error(
        create_category(&app, "caps", Some("nowhere")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    assert_error(
        create_category(&app, "All", None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    assert_error(
        create_category(&app, "all", None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    assert_error(
        app.get("/v1/categories/nowhere").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.get("/v1/products?category=nowhere").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let under_itself = app
        .admin(Method::PATCH, "/v1/categories/apparel")
        .json(&json!({"parent": "t-shirts"}))
        .send()
        .await
        .unwrap();
    assert_error(under_itself, StatusCode::CONFLICT, "category_conflict").await;

    // Eight levels at most: a chain under `home` reaches it, one more is refused.
    let mut parent = "home".to_string();
    for level in 2..=8 {
        let slug = format!("level-{level}");
        assert_eq!(
            create_category(&app, &slug, Some(&parent)).await.status(),
            StatusCode::CREATED
        );
        parent = slug;
    }
    assert_error(
        create_category(&app, "level-9", Some(&parent)).await,
        StatusCode::CONFLICT,
        "category_conflict",
    )
    .await;
    // Moving `apparel` (two levels) under level-7 would make ten.
    let too_deep = app
        .admin(Method::PATCH, "/v1/categories/apparel")
        .json(&json!({"parent": "level-7"}))
        .send()
        .await
        .unwrap();
    assert_error(too_deep, StatusCode::CONFLICT, "category_conflict").await;

    // A category that lists something is not deleted.
    product_in(&app, "TREE-1", 100, 1, &["hoodies"]).await;
    let with_children = app
        .admin(Method::DELETE, "/v1/categories/apparel")
        .send()
        .await
        .unwrap();
    assert_error(with_children, StatusCode::CONFLICT, "category_conflict").await;
    let with_products = app
        .admin(Method::DELETE, "/v1/categories/hoodies")
        .send()
        .await
        .unwrap();
    assert_error(with_products, StatusCode::CONFLICT, "category_conflict").await;
    let empty = app
        .admin(Method::DELETE, "/v1/categories/level-8")
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), StatusCode::NO_CONTENT);
    assert_error(
        app.get("/v1/categories/level-8").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn a_product_is_listed_in_its_categories_and_their_ancestors_and_a_move_is_a_new_version() {
    let app = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    small_tree(&app).await;
    let shirt = product_in(&app, "SHIRT-1", 1500, 5, &["t-shirts"]).await;
    assert_eq!(shirt.categories, ["t-shirts"]);
    assert_eq!(shirt.listed_in, ["apparel", "t-shirts"]);

    let unknown = app
        .admin(Method::POST, "/v1/products")
        .json(&json!({"sku": "X-1", "name": "X", "price_cents": 1, "categories": ["nowhere"]}))
        .send()
        .await
        .unwrap();
    let error = assert_error(unknown, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    assert!(
        error["message"].as_str().unwrap().contains("nowhere"),
        "{error}"
    );

    let moved = app
        .change(
            Method::PATCH,
            &format!("/v1/products/{}", shirt.id),
            json!({"categories": ["home"]}),
        )
        .await;
    assert_eq!(
        (moved.version, moved.listed_in.clone()),
        (shirt.version + 1, vec!["home".to_string()])
    );

    // Moving a category relists what is under it: each product a new version, published.
    let hoodie = product_in(&app, "HOODIE-1", 3000, 5, &["hoodies"]).await;
    let (apparel_before, _) = page(&app, "category=apparel").await;
    assert_eq!(ids(&apparel_before), [hoodie.id]);
    let moved: Value = ok(
        app.admin(Method::PATCH, "/v1/categories/hoodies")
            .json(&json!({"parent": "home"}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(moved["parent"], "home");
    let read = app.product(hoodie.id).await;
    assert_eq!(read.version, hoodie.version + 1);
    assert_eq!(read.listed_in, ["home", "hoodies"]);
    let (apparel_after, _) = page(&app, "category=apparel").await;
    assert!(
        apparel_after.items.is_empty(),
        "moved out: {:?}",
        ids(&apparel_after)
    );
    let (home, _) = page(&app, "category=home&sort=price").await;
    assert_eq!(ids(&home), [shirt.id, hoodie.id]);
}

#[tokio::test]
async fn pages_filter_sort_and_page_by_cursor_without_skipping_or_repeating() {
    let app = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    small_tree(&app).await;
    let mut made = Vec::new();
    for (n, price) in [700, 300, 500, 300, 900, 100, 500].into_iter().enumerate() {
        let stock = if n == 2 { 0 } else { 3 };
        made.push(product_in(&app, &format!("SORT-{n}"), price, stock, &["t-shirts"]).await);
    }
    product_in(&app, "ELSEWHERE", 400, 3, &["home"]).await;

    let mut expected: Vec<&Product> = made.iter().collect();
    expected.sort_by_key(|p| (p.price_cents, p.id));
    let mut seen = Vec::new();
    let mut query = "category=apparel&sort=price&limit=3".to_string();
    loop {
        let (page, _) = page(&app, &query).await;
        assert!(page.items.len() <= 3);
        seen.extend(ids(&page));
        match page.next_cursor {
            Some(cursor) => query = format!("category=apparel&sort=price&limit=3&cursor={cursor}"),
            None => break,
        }
        assert!(seen.len() <= 7, "pages must end");
    }
    assert_eq!(seen, expected.iter().map(|p| p.id).collect::<Vec<_>>());

    let (descending, _) = page(&app, "category=t-shirts&sort=-price").await;
    let mut by_price_down = expected.iter().map(|p| p.id).collect::<Vec<_>>();
    by_price_down.reverse();
    assert_eq!(ids(&descending), by_price_down);

    let (in_range, _) = page(
        &app,
        "category=apparel&min_price=300&max_price=500&in_stock=true&sort=price",
    )
    .await;
    let wanted: Vec<i64> = expected
        .iter()
        .filter(|p| (300..=500).contains(&p.price_cents) && p.stock > 0)
        .map(|p| p.id)
        .collect();
    assert_eq!(ids(&in_range), wanted);

    // A cursor belongs to its listing, and one changed by hand is refused.
    let (first, _) = page(&app, "category=apparel&sort=price&limit=2").await;
    let cursor = first.next_cursor.unwrap();
    for bad in [
        format!("category=apparel&sort=name&cursor={cursor}"),
        format!("category=home&sort=price&cursor={cursor}"),
        format!(
            "category=apparel&sort=price&cursor={}x",
            &cursor[..cursor.len() - 1]
        ),
        "category=apparel&sort=price&cursor=%7B%7D".to_string(),
        "sort=cheapest".to_string(),
        "min_price=5&max_price=4".to_string(),
        "min_price=-1".to_string(),
        "sort=price&after=3".to_string(),
    ] {
        let response = app.get(&format!("/v1/products?{bad}")).await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    }
}

#[tokio::test]
async fn a_warm_page_is_served_without_postgres_and_a_write_shows_on_it_at_once() {
    let app = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    let other = app.sibling().spawn().await;
    small_tree(&app).await;
    let cheap = product_in(&app, "WARM-1", 100, 5, &["t-shirts"]).await;
    let dear = product_in(&app, "WARM-2", 9000, 5, &["t-shirts"]).await;
    let mug = product_in(&app, "WARM-3", 500, 5, &["home"]).await;

    let query = "category=apparel&max_price=1000&in_stock=true&sort=price";
    page(&app, query).await;
    page(&app, "category=home").await;
    let stats = app.catalog.cache_stats();
    let (pages_before, reads_before) = (
        stats.page_database_reads.load(Ordering::Relaxed),
        stats.database_reads.load(Ordering::Relaxed),
    );
    let (warm, cache) = page(&app, query).await;
    assert_eq!((ids(&warm), cache.as_str()), (vec![cheap.id], "hit"));
    assert_eq!(
        stats.page_database_reads.load(Ordering::Relaxed),
        pages_before
    );
    assert_eq!(stats.database_reads.load(Ordering::Relaxed), reads_before);

    // A write on the other instance: once acknowledged, every page shows it, here too.
    let sold = other.adjust(cheap.id, -2).await;
    let (after, _) = page(&app, query).await;
    assert_eq!(after.items[0].version, sold.version);
    assert_eq!(after.items[0].stock, 3);
    // A price moved into the range brings a product onto the page, at its place in the order.
    let cheaper = other
        .change(
            Method::PATCH,
            &format!("/v1/products/{}", dear.id),
            json!({"price_cents": 50}),
        )
        .await;
    let (moved_in, _) = page(&app, query).await;
    assert_eq!(ids(&moved_in), [dear.id, cheap.id]);
    assert_eq!(moved_in.items[0].version, cheaper.version);
    // Sold out: off the in-stock page.
    other.adjust(dear.id, -5).await;
    let (sold_out, _) = page(&app, query).await;
    assert_eq!(ids(&sold_out), [cheap.id]);

    // Nothing of this touched the pages of another category.
    let (home, cache) = page(&app, "category=home").await;
    assert_eq!((ids(&home), cache.as_str()), (vec![mug.id], "hit"));

    // An ETag names the page's content.
    let response = app.get(&format!("/v1/products?{query}")).await;
    let etag = response.headers()["etag"].clone();
    let unchanged = app
        .client()
        .get(app.url(&format!("/v1/products?{query}")))
        .header("If-None-Match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    other.adjust(cheap.id, 1).await;
    let changed = app
        .client()
        .get(app.url(&format!("/v1/products?{query}")))
        .header("If-None-Match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_page_cached_by_ttl_goes_stale_as_the_naive_strategy_does() {
    let app = TestApp::builder()
        .strategy(shopnow::CacheStrategy::Ttl, SHARED_REDIS)
        .spawn()
        .await;
    small_tree(&app).await;
    let shirt = product_in(&app, "NAIVE-1", 100, 5, &["t-shirts"]).await;
    page(&app, "category=apparel").await;
    app.adjust(shirt.id, -5).await;
    let (stale, cache) = page(&app, "category=apparel").await;
    assert_eq!(cache, "hit");
    assert_eq!(
        stale.items[0].stock, 5,
        "ttl pages show what was stored: the bug, kept"
    );
}

#[tokio::test]
async fn holds_and_orders_keep_a_page_cached_and_fresh_and_a_sell_out_takes_the_product_off() {
    let app = TestApp::builder().versioned(SHARED_REDIS).spawn().await;
    small_tree(&app).await;
    let drop = product_in(&app, "DROP-1", 100, 3, &["t-shirts"]).await;
    let other = product_in(&app, "DROP-2", 200, 3, &["t-shirts"]).await;
    let query = "category=apparel&in_stock=true&sort=price";
    page(&app, query).await;

    let hold = |quantity: i64| {
        app.client()
            .post(app.url("/v1/holds"))
            .json(&json!({"items": [{"product_id": drop.id, "quantity": quantity}]}))
            .send()
    };
    assert_eq!(hold(1).await.unwrap().status(), StatusCode::CREATED);
    let (held, cache) = page(&app, query).await;
    assert_eq!(
        cache, "hit",
        "a hold cannot bring a product onto a page: nothing renewed"
    );
    assert_eq!((held.items[0].reserved, held.items[0].available), (1, 2));

    // The last two units: sold out, off the in-stock page at once.
    assert_eq!(hold(2).await.unwrap().status(), StatusCode::CREATED);
    let (sold_out, _) = page(&app, query).await;
    assert_eq!(ids(&sold_out), [other.id]);
    let (all, _) = page(&app, "category=apparel&sort=price").await;
    assert_eq!(all.items[0].available, 0);

    // A delivery of a product in stock renews nothing; one that brings it back does, at once.
    app.adjust(other.id, 1).await;
    let (still, cache) = page(&app, query).await;
    assert_eq!((ids(&still), cache.as_str()), (vec![other.id], "hit"));
    app.adjust(drop.id, 2).await;
    let (back, _) = page(&app, query).await;
    assert_eq!(ids(&back), [drop.id, other.id]);
}
