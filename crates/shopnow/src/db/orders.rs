//! Orders: one transaction takes the stock of every item or of none; a cancellation returns it.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{
    holds,
    idempotency::claim_idempotency_key,
    products::QUALIFIED_COLUMNS,
    stock::{
        check_available, check_on_hand, check_purchase_limits, lock_products,
        lock_rows_in_id_order, single_currency, Locked,
    },
};
use crate::{
    error::{Error, Result},
    model::{
        Bearer, Order, OrderItem, OrderLines, OrderReceipt, OrderSource, OrderStatus, Product,
        StoredOrder,
    },
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

/// Places an order from `source` readable with `access_token`, at most once per
/// `idempotency_key`, in the caller's transaction `tx`; `default_limit` is the purchase limit of a
/// product without its own. An order from a hold takes `bearer`,
/// which must open the hold. An error leaves the transaction to be rolled back.
pub(crate) async fn place(
    tx: &mut PgConnection,
    source: &OrderSource,
    bearer: Option<&Bearer>,
    idempotency_key: Option<&str>,
    access_token: &str,
    default_limit: i64,
) -> Result<Placed> {
    let fingerprint = source.fingerprint();
    if let Some(key) = idempotency_key {
        if !claim_idempotency_key(tx, key, &fingerprint).await? {
            return replay(tx, key, &fingerprint).await.map(Placed::Replayed);
        }
    }
    let (receipt, changed) = match source {
        OrderSource::Items(lines) => {
            let locked = lock_products(tx, lines, default_limit).await?;
            check_purchase_limits(&locked, lines)?;
            check_available(&locked, lines)?;
            let currency = single_currency(&locked)?;
            let changed = take_stock(tx, lines, None).await?;
            let order = record_order(tx, lines, &locked, currency, access_token, None).await?;
            (order, changed)
        }
        OrderSource::Hold(hold_id) => {
            let (lines, expires_at_ms) = holds::take_for_order(tx, *hold_id, bearer).await?;
            // A hold's items met the purchase limits when it was made.
            let locked = lock_products(tx, &lines, default_limit).await?;
            // The hold set the units aside: only the stock itself is checked (a change made in
            // SQL could have taken it below the hold).
            check_on_hand(&locked, &lines)?;
            let currency = single_currency(&locked)?;
            let changed = take_stock(tx, &lines, Some(expires_at_ms)).await?;
            // Also marks the hold converted.
            let order =
                record_order(tx, &lines, &locked, currency, access_token, Some(*hold_id)).await?;
            (order, changed)
        }
    };
    if let Some(key) = idempotency_key {
        sqlx::query(
            "UPDATE idempotency_keys SET order_id = $1 WHERE key = $2 AND request_hash = $3",
        )
        .bind(receipt.id)
        .bind(key)
        .bind(&fingerprint)
        .execute(&mut *tx)
        .await?;
    }
    let receipt = OrderReceipt {
        order: receipt,
        access_token: access_token.to_string(),
    };
    Ok(Placed::New { receipt, changed })
}

/// What cancelling an order did.
pub(crate) struct Cancelled {
    pub order: StoredOrder,
    /// The products whose stock came back; empty when the order was cancelled before.
    pub changed: Vec<Product>,
}

/// Cancels order `id` if `bearer` opens it, returning its items' stock, in the caller's
/// transaction. A cancelled order stays as it is: a second cancel returns nothing twice.
pub(crate) async fn cancel(tx: &mut PgConnection, id: i64, bearer: &Bearer) -> Result<Cancelled> {
    let header: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT status, access_token FROM orders WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((status, _)) = header.filter(|(_, token)| bearer.opens(token.as_deref())) else {
        return Err(Error::order_not_found(id));
    };
    let mut changed = Vec::new();
    if OrderStatus::parse(&status) == Some(OrderStatus::Confirmed) {
        let (product_ids, quantities): (Vec<i64>, Vec<i64>) = sqlx::query_as::<_, (i64, i64)>(
            "SELECT product_id, quantity FROM order_items WHERE order_id = $1 ORDER BY product_id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .unzip();
        lock_rows_in_id_order(tx, &product_ids).await?;
        changed = sqlx::query_as(&format!(
            "UPDATE products AS p SET stock = p.stock + line.quantity \
             FROM unnest($1::bigint[], $2::bigint[]) AS line(product_id, quantity) \
             WHERE p.id = line.product_id AND p.deleted_at IS NULL \
             RETURNING {QUALIFIED_COLUMNS}"
        ))
        .bind(&product_ids)
        .bind(&quantities)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("UPDATE orders SET status = 'cancelled', cancelled_at = now() WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    let order = find(tx, id)
        .await?
        .ok_or_else(|| Error::order_not_found(id))?;
    Ok(Cancelled { order, changed })
}

/// Takes every item's quantity (and, for an order from a hold that expires at
/// `hold_expires_at_ms`, the hold's units out of that second's schedule entry); returns the
/// changed rows, their versions raised by the `products_own_version` trigger.
async fn take_stock(
    tx: &mut PgConnection,
    lines: &OrderLines,
    hold_expires_at_ms: Option<i64>,
) -> Result<Vec<Product>> {
    Ok(sqlx::query_as(&format!(
        "UPDATE products AS p SET stock = p.stock - line.quantity, \
             holds = CASE WHEN $3::bigint IS NULL THEN p.holds \
                          ELSE shopnow_hold_change(p.holds, $3, -line.quantity) END \
         FROM unnest($1::bigint[], $2::bigint[]) AS line(product_id, quantity) \
         WHERE p.id = line.product_id \
         RETURNING {QUALIFIED_COLUMNS}"
    ))
    .bind(lines.product_ids())
    .bind(lines.quantities())
    .bind(hold_expires_at_ms)
    .fetch_all(&mut *tx)
    .await?)
}

/// The largest total an order may have: 2^53 - 1, the largest integer a JSON client that reads
/// numbers as doubles (JavaScript's `Number.MAX_SAFE_INTEGER`) holds exactly.
const MOST_TOTAL_CENTS: i64 = (1 << 53) - 1;

/// Inserts the order and its items at the prices locked with the rows, and marks `hold`, if
/// any, converted into it.
async fn record_order(
    tx: &mut PgConnection,
    lines: &OrderLines,
    locked: &[Locked],
    currency: &str,
    access_token: &str,
    hold: Option<uuid::Uuid>,
) -> Result<Order> {
    // At most 100 lines of 10,000 units at 10^12 cents: far inside an i64.
    let total_cents: i64 = locked
        .iter()
        .map(|row| row.price_cents * lines.quantity_of(row.id))
        .sum();
    if total_cents > MOST_TOTAL_CENTS {
        return Err(Error::invalid(format!(
            "the order's total, {total_cents} cents, is more than a JSON client holds exactly \
             ({MOST_TOTAL_CENTS}); split it"
        )));
    }
    let items: Vec<OrderItem> = locked
        .iter()
        .map(|row| OrderItem {
            product_id: row.id,
            quantity: lines.quantity_of(row.id),
            unit_price_cents: row.price_cents,
        })
        .collect();
    // One statement, one round trip: the order, its items and, for an order from a hold, the
    // hold's conversion (a group commit runs its writes one after another under the product's
    // row lock, so every round trip of a write is one the product's other writes wait for).
    let (id, created_at): (i64, DateTime<Utc>) = sqlx::query_as(
        "WITH new_order AS ( \
             INSERT INTO orders (total_cents, currency, access_token, hold_id) \
             VALUES ($1, $2, $3, $4::uuid) RETURNING id, created_at), \
         new_items AS ( \
             INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) \
             SELECT new_order.id, item.* FROM new_order, \
                    unnest($5::bigint[], $6::bigint[], $7::bigint[]) AS item), \
         converted AS ( \
             UPDATE holds SET status = 'converted', ended_at = now(), order_id = new_order.id \
             FROM new_order WHERE holds.id = $4::uuid) \
         SELECT id, created_at FROM new_order",
    )
    .bind(total_cents)
    .bind(currency)
    .bind(access_token)
    .bind(hold.map(|id| id.to_string()))
    .bind(items.iter().map(|i| i.product_id).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.quantity).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.unit_price_cents).collect::<Vec<_>>())
    .fetch_one(&mut *tx)
    .await?;
    Ok(Order {
        id,
        status: OrderStatus::Confirmed,
        items,
        total_cents,
        currency: currency.to_string(),
        created_at,
    })
}

/// The order stored under `key` for this request, with its access token.
async fn replay(conn: &mut PgConnection, key: &str, fingerprint: &[u8]) -> Result<OrderReceipt> {
    let order_id: Option<i64> = sqlx::query_scalar(
        "SELECT order_id FROM idempotency_keys WHERE key = $1 AND request_hash = $2",
    )
    .bind(key)
    .bind(fingerprint)
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
    let status = OrderStatus::parse(&header.status)
        .ok_or_else(|| anyhow::anyhow!("order {id} has the unknown status {:?}", header.status))?;
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
            status,
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
