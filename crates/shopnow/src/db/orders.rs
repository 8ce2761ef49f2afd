//! Orders: one transaction takes the stock of every item or of none.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::{
    error::{Error, Result},
    model::{Order, OrderItem, OrderLines, OrderReceipt, Product, StoredOrder},
};

/// What placing an order did.
pub(crate) enum Placed {
    /// A new order; `changed` holds every product row it changed, for the cache to publish.
    New {
        receipt: OrderReceipt,
        changed: Vec<Product>,
    },
    /// A retry of an order already placed with the same Idempotency-Key; nothing changed.
    Replayed(OrderReceipt),
}

/// Places an order for `lines` readable with `access_token`, at most once per
/// `idempotency_key`, in the caller's transaction `tx`. An error leaves the transaction to be
/// rolled back.
pub(crate) async fn place(
    tx: &mut PgConnection,
    lines: &OrderLines,
    idempotency_key: Option<&str>,
    access_token: &str,
) -> Result<Placed> {
    if let Some(key) = idempotency_key {
        if !claim_idempotency_key(tx, key, lines).await? {
            return replay(tx, key, lines).await.map(Placed::Replayed);
        }
    }
    let locked = lock_products(tx, lines).await?;
    check_stock(&locked, lines)?;
    let currency = single_currency(&locked)?;
    let changed = take_stock(tx, lines).await?;
    let order = record_order(tx, lines, &locked, currency, access_token).await?;
    if let Some(key) = idempotency_key {
        sqlx::query(
            "UPDATE idempotency_keys SET order_id = $1 WHERE key = $2 AND request_hash = $3",
        )
        .bind(order.id)
        .bind(key)
        .bind(lines.fingerprint())
        .execute(&mut *tx)
        .await?;
    }
    let receipt = OrderReceipt {
        order,
        access_token: access_token.to_string(),
    };
    Ok(Placed::New { receipt, changed })
}

/// Inserts the key with the request's fingerprint; false when that pair exists already. A
/// concurrent request with the same key and items blocks on the unique index until the first
/// commits (then finds its order) or rolls back (then goes ahead itself). The same key with
/// other items is another request (see the migration `idempotency_key_per_request`).
async fn claim_idempotency_key(
    tx: &mut PgConnection,
    key: &str,
    lines: &OrderLines,
) -> Result<bool> {
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (key, request_hash) VALUES ($1, $2) \
         ON CONFLICT (key, request_hash) DO NOTHING RETURNING key",
    )
    .bind(key)
    .bind(lines.fingerprint())
    .fetch_optional(&mut *tx)
    .await?;
    Ok(inserted.is_some())
}

/// An ordered product's row, locked for the rest of the transaction.
#[derive(sqlx::FromRow)]
struct Locked {
    id: i64,
    stock: i64,
    price_cents: i64,
    currency: String,
}

/// Locks every ordered row in product-id order (the ORDER BY runs before the lock), so that two
/// orders over the same products always wait for each other, never deadlock.
async fn lock_products(tx: &mut PgConnection, lines: &OrderLines) -> Result<Vec<Locked>> {
    let product_ids = lines.product_ids();
    let locked: Vec<Locked> = sqlx::query_as(
        "SELECT id, stock, price_cents, currency FROM products \
         WHERE id = ANY($1) AND deleted_at IS NULL ORDER BY id FOR UPDATE",
    )
    .bind(&product_ids)
    .fetch_all(&mut *tx)
    .await?;
    if locked.len() != product_ids.len() {
        let missing: Vec<String> = product_ids
            .iter()
            .filter(|id| !locked.iter().any(|row| row.id == **id))
            .map(i64::to_string)
            .collect();
        return Err(Error::NotFound(format!(
            "no such product: {}",
            missing.join(", ")
        )));
    }
    Ok(locked)
}

/// Every item in stock, checked under the row locks, so that stock is never oversold.
fn check_stock(locked: &[Locked], lines: &OrderLines) -> Result<()> {
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
    if short.is_empty() {
        Ok(())
    } else {
        Err(Error::InsufficientStock(short.join("; ")))
    }
}

fn single_currency(locked: &[Locked]) -> Result<&str> {
    let currency = locked[0].currency.as_str();
    if locked.iter().any(|row| row.currency != currency) {
        return Err(Error::invalid(
            "all items of one order must share a currency",
        ));
    }
    Ok(currency)
}

/// Takes every item's quantity; returns the changed rows, their versions raised by the
/// `products_own_version` trigger.
async fn take_stock(tx: &mut PgConnection, lines: &OrderLines) -> Result<Vec<Product>> {
    Ok(sqlx::query_as(
        "UPDATE products AS p SET stock = p.stock - line.quantity \
         FROM unnest($1::bigint[], $2::bigint[]) AS line(product_id, quantity) \
         WHERE p.id = line.product_id \
         RETURNING p.id, p.sku, p.name, p.description, p.price_cents, p.currency, p.stock, \
                   p.version, p.updated_at, (SELECT shopnow_history()) AS history",
    )
    .bind(lines.product_ids())
    .bind(lines.quantities())
    .fetch_all(&mut *tx)
    .await?)
}

/// Inserts the order and its items at the prices locked with the rows.
async fn record_order(
    tx: &mut PgConnection,
    lines: &OrderLines,
    locked: &[Locked],
    currency: &str,
    access_token: &str,
) -> Result<Order> {
    let total_cents: i64 = locked
        .iter()
        .map(|row| row.price_cents * lines.quantity_of(row.id))
        .sum();
    let (id, status, created_at): (i64, String, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO orders (total_cents, currency, access_token) VALUES ($1, $2, $3) \
         RETURNING id, status, created_at",
    )
    .bind(total_cents)
    .bind(currency)
    .bind(access_token)
    .fetch_one(&mut *tx)
    .await?;

    let items: Vec<OrderItem> = locked
        .iter()
        .map(|row| OrderItem {
            product_id: row.id,
            quantity: lines.quantity_of(row.id),
            unit_price_cents: row.price_cents,
        })
        .collect();
    sqlx::query(
        "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) \
         SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::bigint[])",
    )
    .bind(id)
    .bind(items.iter().map(|i| i.product_id).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.quantity).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.unit_price_cents).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(Order {
        id,
        status,
        items,
        total_cents,
        currency: currency.to_string(),
        created_at,
    })
}

/// The order stored under `key` for these `lines`, with its access token.
async fn replay(conn: &mut PgConnection, key: &str, lines: &OrderLines) -> Result<OrderReceipt> {
    let order_id: Option<i64> = sqlx::query_scalar(
        "SELECT order_id FROM idempotency_keys WHERE key = $1 AND request_hash = $2",
    )
    .bind(key)
    .bind(lines.fingerprint())
    .fetch_one(&mut *conn)
    .await?;
    let order_id = order_id
        .ok_or_else(|| anyhow::anyhow!("idempotency key {key:?} committed without an order"))?;
    let stored = find(conn, order_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("order {order_id} of idempotency key vanished"))?;
    let access_token = stored
        .access_token
        .ok_or_else(|| anyhow::anyhow!("order {order_id} of an idempotency key has no token"))?;
    Ok(OrderReceipt {
        order: stored.order,
        access_token,
    })
}

pub(crate) async fn find(conn: &mut PgConnection, id: i64) -> Result<Option<StoredOrder>> {
    #[derive(sqlx::FromRow)]
    struct Header {
        status: String,
        total_cents: i64,
        currency: String,
        created_at: DateTime<Utc>,
        access_token: Option<String>,
    }
    let header: Option<Header> = sqlx::query_as(
        "SELECT status, total_cents, currency, created_at, access_token FROM orders WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(header) = header else {
        return Ok(None);
    };
    let items: Vec<OrderItem> = sqlx::query_as(
        "SELECT product_id, quantity, unit_price_cents FROM order_items \
         WHERE order_id = $1 ORDER BY product_id",
    )
    .bind(id)
    .fetch_all(conn)
    .await?;
    Ok(Some(StoredOrder {
        order: Order {
            id,
            status: header.status,
            items,
            total_cents: header.total_cents,
            currency: header.currency,
            created_at: header.created_at,
        },
        access_token: header.access_token,
    }))
}

/// Deletes up to `limit` idempotency keys older than `retention` that no other transaction holds;
/// returns how many.
pub(crate) async fn delete_expired_idempotency_keys(
    conn: &mut PgConnection,
    retention: std::time::Duration,
    limit: i64,
) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM idempotency_keys WHERE (key, request_hash) IN ( \
             SELECT key, request_hash FROM idempotency_keys \
             WHERE created_at < now() - make_interval(secs => $1) \
             ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(retention.as_secs_f64())
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
