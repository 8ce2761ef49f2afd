//! Orders: one transaction takes the stock of every item or of none.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::{
    error::{ApiError, ApiResult},
    order::{Order, OrderItem, OrderLines},
    product::Product,
};

/// What placing an order did.
pub enum Placed {
    /// A new order; `changed` holds every product row it changed, for the cache to publish.
    New { order: Order, changed: Vec<Product> },
    /// A retry of an order already placed with the same Idempotency-Key; nothing changed.
    Replayed(Order),
}

/// Places an order for `lines`, at most once per `idempotency_key`, in the caller's
/// transaction `tx`. An error leaves the transaction to be rolled back.
pub async fn place(
    tx: &mut PgConnection,
    lines: &OrderLines,
    idempotency_key: Option<&str>,
) -> ApiResult<Placed> {
    if let Some(key) = idempotency_key {
        // The first request with a key inserts it; a concurrent one blocks on the unique index
        // until the first commits (then finds its order) or rolls back (then goes ahead itself).
        let inserted: Option<String> = sqlx::query_scalar(
            "INSERT INTO idempotency_keys (key, request_hash) VALUES ($1, $2) \
             ON CONFLICT (key) DO NOTHING RETURNING key",
        )
        .bind(key)
        .bind(lines.fingerprint())
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            return replay(tx, key, lines).await.map(Placed::Replayed);
        }
    }

    let product_ids = lines.product_ids();
    // Lock every row in product-id order (the ORDER BY runs before the lock), so that two
    // orders over the same products always wait for each other, never deadlock.
    #[derive(sqlx::FromRow)]
    struct Locked {
        id: i64,
        stock: i64,
        price_cents: i64,
        currency: String,
    }
    let locked: Vec<Locked> = sqlx::query_as(
        "SELECT id, stock, price_cents, currency FROM products \
         WHERE id = ANY($1) AND deleted_at IS NULL ORDER BY id FOR UPDATE",
    )
    .bind(&product_ids)
    .fetch_all(&mut *tx)
    .await?;

    if locked.len() != product_ids.len() {
        let missing: Vec<i64> = product_ids
            .iter()
            .copied()
            .filter(|id| !locked.iter().any(|row| row.id == *id))
            .collect();
        return Err(ApiError::not_found(format!(
            "no such product: {}",
            join_ids(&missing)
        )));
    }
    let short: Vec<String> = locked
        .iter()
        .filter(|row| row.stock < lines.quantity_of(row.id))
        .map(|row| {
            format!(
                "product {} has {} in stock, {} ordered",
                row.id,
                row.stock,
                lines.quantity_of(row.id)
            )
        })
        .collect();
    if !short.is_empty() {
        return Err(ApiError::conflict("insufficient_stock", short.join("; ")));
    }
    let currency = locked[0].currency.clone();
    if locked.iter().any(|row| row.currency != currency) {
        return Err(ApiError::invalid(
            "all items of one order must share a currency",
        ));
    }
    let total_cents: i64 = locked
        .iter()
        .map(|row| row.price_cents * lines.quantity_of(row.id))
        .sum();

    let changed: Vec<Product> = sqlx::query_as(
        "UPDATE products AS p SET stock = p.stock - line.quantity, version = p.version + 1, \
         updated_at = now() \
         FROM unnest($1::bigint[], $2::bigint[]) AS line(product_id, quantity) \
         WHERE p.id = line.product_id \
         RETURNING p.id, p.sku, p.name, p.description, p.price_cents, p.currency, p.stock, \
                   p.version, p.updated_at",
    )
    .bind(&product_ids)
    .bind(lines.quantities())
    .fetch_all(&mut *tx)
    .await?;

    let (order_id, status, created_at): (i64, String, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO orders (total_cents, currency) VALUES ($1, $2) \
         RETURNING id, status, created_at",
    )
    .bind(total_cents)
    .bind(&currency)
    .fetch_one(&mut *tx)
    .await?;

    let prices: Vec<i64> = locked.iter().map(|row| row.price_cents).collect();
    sqlx::query(
        "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) \
         SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::bigint[])",
    )
    .bind(order_id)
    .bind(&product_ids)
    .bind(lines.quantities())
    .bind(&prices)
    .execute(&mut *tx)
    .await?;

    if let Some(key) = idempotency_key {
        sqlx::query("UPDATE idempotency_keys SET order_id = $1 WHERE key = $2")
            .bind(order_id)
            .bind(key)
            .execute(&mut *tx)
            .await?;
    }
    let items = product_ids
        .iter()
        .zip(lines.quantities())
        .zip(prices)
        .map(|((&product_id, quantity), unit_price_cents)| OrderItem {
            product_id,
            quantity,
            unit_price_cents,
        })
        .collect();
    let order = Order {
        id: order_id,
        status,
        items,
        total_cents,
        currency,
        created_at,
    };
    Ok(Placed::New { order, changed })
}

/// The order stored under `key`, if the retry carries the same lines.
async fn replay(conn: &mut PgConnection, key: &str, lines: &OrderLines) -> ApiResult<Order> {
    let (request_hash, order_id): (Vec<u8>, Option<i64>) =
        sqlx::query_as("SELECT request_hash, order_id FROM idempotency_keys WHERE key = $1")
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
    if request_hash != lines.fingerprint() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different order; use a new key",
        ));
    }
    let order_id = order_id
        .ok_or_else(|| anyhow::anyhow!("idempotency key {key:?} committed without an order"))?;
    find(conn, order_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("order {order_id} of idempotency key vanished").into())
}

pub async fn find(conn: &mut PgConnection, id: i64) -> ApiResult<Option<Order>> {
    let header: Option<(String, i64, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT status, total_cents, currency, created_at FROM orders WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((status, total_cents, currency, created_at)) = header else {
        return Ok(None);
    };
    let items: Vec<OrderItem> = sqlx::query_as(
        "SELECT product_id, quantity, unit_price_cents FROM order_items \
         WHERE order_id = $1 ORDER BY product_id",
    )
    .bind(id)
    .fetch_all(conn)
    .await?;
    Ok(Some(Order {
        id,
        status,
        items,
        total_cents,
        currency,
        created_at,
    }))
}

fn join_ids(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
