//! Holds: the `holds` table is the holder's receipt; what the hold sets aside lives on each
//! product's row (`products.holds`), so that every change of it is a change of the product, with
//! its version, its outbox row and its publish. Statements here change both in one transaction.
//!
//! A product's row keeps a schedule, not a list of holds: one entry per whole second in which
//! its holds lapse, with their units together (migration `reservations_by_the_second`). A hold
//! expires at a whole second, so its units join that second's entry and leave it again when it
//! is released or converted: what every write of the row rewrites grows with the seconds in
//! which holds lapse, never with the number of shoppers holding.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{
    idempotency::claim_idempotency_key,
    products::{COLUMNS, QUALIFIED_COLUMNS},
    stock::{
        check_available, check_purchase_limits, lock_products, lock_rows_in_id_order,
        single_currency,
    },
};
use crate::{
    error::{Error, Result},
    model::{
        Bearer, Hold, HoldItem, HoldLines, HoldReceipt, HoldStatus, OrderLines, Product,
        ProductHold, StoredHold,
    },
};

/// What creating a hold did.
pub(crate) enum Created {
    /// A new hold; `changed` holds every product row it changed, for the cache to publish.
    New {
        receipt: HoldReceipt,
        changed: Vec<Product>,
    },
    /// A retry of a hold created before with the same Idempotency-Key; nothing changed.
    Replayed(HoldReceipt),
}

/// Sets `hold`'s items aside for its duration, all or none, at most once per `idempotency_key`;
/// `default_limit` is the purchase limit of a product without its own.
pub(crate) async fn create(
    tx: &mut PgConnection,
    hold: &HoldLines,
    idempotency_key: Option<&str>,
    access_token: &str,
    default_limit: i64,
) -> Result<Created> {
    let fingerprint = hold.fingerprint();
    if let Some(key) = idempotency_key {
        if !claim_idempotency_key(tx, key, &fingerprint).await? {
            return replay(tx, key, &fingerprint).await.map(Created::Replayed);
        }
    }
    let locked = lock_products(tx, &hold.lines, default_limit).await?;
    check_purchase_limits(&locked, &hold.lines)?;
    check_available(&locked, &hold.lines)?;
    single_currency(&locked)?;
    let id = uuid::Uuid::new_v4();
    let items = items_json(&hold.lines);
    // A whole second: the products' schedules have one entry per second (the module says why).
    // The hold is read back from the INSERT itself: a round trip less under the row lock.
    let inserted: InsertedHold = sqlx::query_as(&format!(
        "INSERT INTO holds (id, access_token, items, expires_at) \
         VALUES ($1::uuid, $2, $3::jsonb, shopnow_hold_expiry($4)) \
         RETURNING {HOLD_COLUMNS}, (extract(epoch FROM expires_at) * 1000)::bigint AS expires_at_ms"
    ))
    .bind(id.to_string())
    .bind(access_token)
    .bind(&items)
    .bind(hold.ttl_seconds as f64)
    .fetch_one(&mut *tx)
    .await?;
    let expires_at_ms = inserted.expires_at_ms;
    // Lapsed entries go in the same statement: the schedule holds live entries and a few that
    // lapsed since the last change or sweep.
    let changed: Vec<Product> = sqlx::query_as(&format!(
        "UPDATE products AS p \
         SET holds = shopnow_hold_change(shopnow_live_holds(p.holds), $3, line.quantity) \
         FROM unnest($1::bigint[], $2::bigint[]) AS line(product_id, quantity) \
         WHERE p.id = line.product_id \
         RETURNING {QUALIFIED_COLUMNS}"
    ))
    .bind(hold.lines.product_ids())
    .bind(hold.lines.quantities())
    .bind(expires_at_ms)
    .fetch_all(&mut *tx)
    .await?;
    if let Some(key) = idempotency_key {
        sqlx::query(
            "UPDATE idempotency_keys SET hold_id = $1::uuid WHERE key = $2 AND request_hash = $3",
        )
        .bind(id.to_string())
        .bind(key)
        .bind(&fingerprint)
        .execute(&mut *tx)
        .await?;
    }
    let receipt = HoldReceipt {
        hold: inserted.hold.into_stored(id)?.hold,
        access_token: access_token.to_string(),
    };
    Ok(Created::New { receipt, changed })
}

fn items_json(lines: &OrderLines) -> String {
    let items: Vec<HoldItem> = lines
        .product_ids()
        .into_iter()
        .map(|product_id| HoldItem {
            product_id,
            quantity: lines.quantity_of(product_id),
        })
        .collect();
    serde_json::to_string(&items).expect("hold items serialise")
}

/// The hold stored under `key` for this request, with its access token.
async fn replay(conn: &mut PgConnection, key: &str, fingerprint: &[u8]) -> Result<HoldReceipt> {
    let hold_id: Option<String> = sqlx::query_scalar(
        "SELECT hold_id::text FROM idempotency_keys WHERE key = $1 AND request_hash = $2",
    )
    .bind(key)
    .bind(fingerprint)
    .fetch_one(&mut *conn)
    .await?;
    let hold_id = hold_id
        .and_then(|id| uuid::Uuid::try_parse(&id).ok())
        .ok_or_else(|| anyhow::anyhow!("idempotency key {key:?} committed without a hold"))?;
    let stored = find(conn, hold_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("hold {hold_id} of an idempotency key vanished"))?;
    Ok(HoldReceipt {
        hold: stored.hold,
        access_token: stored.access_token,
    })
}

/// A hold's row; `live` is whether it still holds (held, and not expired by the database's
/// clock).
#[derive(sqlx::FromRow)]
struct HoldRow {
    status: String,
    live: bool,
    items: String,
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    order_id: Option<i64>,
    access_token: String,
}

/// A hold's row as its INSERT returns it, with its expiry in ms (its schedule entry).
#[derive(sqlx::FromRow)]
struct InsertedHold {
    #[sqlx(flatten)]
    hold: HoldRow,
    expires_at_ms: i64,
}

const HOLD_COLUMNS: &str = "status, status = 'held' AND expires_at > now() AS live, \
     items::text AS items, expires_at, created_at, order_id, access_token";

impl HoldRow {
    fn into_stored(self, id: uuid::Uuid) -> Result<StoredHold> {
        let status = match (self.status.as_str(), self.live) {
            ("held", true) => HoldStatus::Held,
            ("held", false) => HoldStatus::Expired,
            ("released", _) => HoldStatus::Released,
            ("converted", _) => HoldStatus::Converted,
            (other, _) => {
                return Err(anyhow::anyhow!("hold {id} has the unknown status {other:?}").into())
            }
        };
        let items: Vec<HoldItem> = serde_json::from_str(&self.items)
            .map_err(|error| anyhow::anyhow!("hold {id} has unreadable items: {error}"))?;
        Ok(StoredHold {
            hold: Hold {
                id: id.to_string(),
                status,
                items,
                expires_at: self.expires_at,
                created_at: self.created_at,
                order_id: self.order_id,
            },
            access_token: self.access_token,
        })
    }
}

pub(crate) async fn find(conn: &mut PgConnection, id: uuid::Uuid) -> Result<Option<StoredHold>> {
    let row: Option<HoldRow> = sqlx::query_as(&format!(
        "SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1::uuid"
    ))
    .bind(id.to_string())
    .fetch_optional(conn)
    .await?;
    row.map(|row| row.into_stored(id)).transpose()
}

/// The products hold `id` names, in id order (none when there is no such hold), read without a
/// lock or a token: a hold's items never change, and this only routes a write of the hold to
/// its products' write gate and group (the write itself checks the token, under its locks).
pub(crate) async fn products_of(conn: &mut PgConnection, id: uuid::Uuid) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT (item->>'product_id')::bigint AS product_id \
         FROM holds, jsonb_array_elements(holds.items) AS item \
         WHERE holds.id = $1::uuid ORDER BY 1",
    )
    .bind(id.to_string())
    .fetch_all(conn)
    .await?)
}

/// Up to `limit` live holds of `product` (held and not expired), in id order after `after`.
pub(crate) async fn live_of_product(
    conn: &mut PgConnection,
    product: i64,
    after: Option<uuid::Uuid>,
    limit: i64,
) -> Result<Vec<ProductHold>> {
    Ok(sqlx::query_as(
        "SELECT holds.id::text AS id, (item->>'quantity')::bigint AS quantity, expires_at, created_at \
         FROM holds, jsonb_array_elements(holds.items) AS item \
         WHERE status = 'held' AND expires_at > now() \
           AND items @> jsonb_build_array(jsonb_build_object('product_id', $1::bigint)) \
           AND (item->>'product_id')::bigint = $1 \
           AND ($2::uuid IS NULL OR holds.id > $2::uuid) \
         ORDER BY holds.id LIMIT $3",
    )
    .bind(product)
    .bind(after.map(|id| id.to_string()))
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Locks hold `id` for the rest of the transaction, if `bearer` opens it; a hold it does not
/// open reads as missing, as a hold that does not exist.
async fn lock(tx: &mut PgConnection, id: uuid::Uuid, bearer: &Bearer) -> Result<StoredHold> {
    let row: Option<HoldRow> = sqlx::query_as(&format!(
        "SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1::uuid FOR UPDATE"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *tx)
    .await?;
    row.map(|row| row.into_stored(id))
        .transpose()?
        .filter(|stored| bearer.opens(Some(&stored.access_token)))
        .ok_or_else(|| Error::hold_not_found(id))
}

/// What releasing a hold did.
pub(crate) struct Released {
    pub hold: StoredHold,
    /// The products whose units came back; empty when the hold no longer held any.
    pub changed: Vec<Product>,
}

/// Releases hold `id`: its units count as available again at once. A hold that has ended
/// (expired, released) stays as it is; one that became an order cannot be released.
pub(crate) async fn release(
    tx: &mut PgConnection,
    id: uuid::Uuid,
    bearer: &Bearer,
) -> Result<Released> {
    let stored = lock(tx, id, bearer).await?;
    let changed = match stored.hold.status {
        HoldStatus::Converted => return Err(Error::hold_converted(id, stored.hold.order_id)),
        HoldStatus::Expired | HoldStatus::Released => Vec::new(),
        HoldStatus::Held => {
            let changed = remove_entries(tx, &stored.hold).await?;
            sqlx::query(
                "UPDATE holds SET status = 'released', ended_at = now() WHERE id = $1::uuid",
            )
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
            changed
        }
    };
    let hold = find(tx, id)
        .await?
        .ok_or_else(|| Error::hold_not_found(id))?;
    Ok(Released { hold, changed })
}

/// Takes live `hold`'s units out of its products' schedules, their rows locked in id order
/// first.
async fn remove_entries(tx: &mut PgConnection, hold: &Hold) -> Result<Vec<Product>> {
    let (product_ids, quantities): (Vec<i64>, Vec<i64>) = hold
        .items
        .iter()
        .map(|item| (item.product_id, item.quantity))
        .unzip();
    lock_rows_in_id_order(tx, &product_ids).await?;
    Ok(sqlx::query_as(&format!(
        "UPDATE products AS p SET holds = shopnow_hold_change(p.holds, $3, -line.quantity) \
         FROM unnest($1::bigint[], $2::bigint[]) AS line(product_id, quantity) \
         WHERE p.id = line.product_id RETURNING {QUALIFIED_COLUMNS}"
    ))
    .bind(&product_ids)
    .bind(&quantities)
    .bind(hold.expires_at.timestamp_millis())
    .fetch_all(&mut *tx)
    .await?)
}

/// The items of live hold `id`, locked for its conversion into an order, and when it expires
/// (ms: the schedule entry its units are in): 409 `hold_expired` when it expired or was
/// released, `hold_converted` when it became an order already.
pub(crate) async fn take_for_order(
    tx: &mut PgConnection,
    id: uuid::Uuid,
    bearer: Option<&Bearer>,
) -> Result<(OrderLines, i64)> {
    let bearer = bearer.ok_or_else(|| {
        Error::Unauthorized(
            "an order from a hold takes the hold's access_token as Authorization: Bearer <token>"
                .into(),
        )
    })?;
    let stored = lock(tx, id, bearer).await?;
    match stored.hold.status {
        HoldStatus::Held => {}
        HoldStatus::Converted => return Err(Error::hold_converted(id, stored.hold.order_id)),
        HoldStatus::Expired => {
            return Err(Error::HoldExpired(format!(
                "hold {id} expired at {}: its units are no longer set aside",
                stored.hold.expires_at.to_rfc3339()
            )))
        }
        HoldStatus::Released => return Err(Error::HoldExpired(format!("hold {id} was released"))),
    }
    let items: Vec<crate::model::OrderItemRequest> = stored
        .hold
        .items
        .iter()
        .map(|item| crate::model::OrderItemRequest {
            product_id: item.product_id,
            quantity: item.quantity,
        })
        .collect();
    let lines = OrderLines::from_items(&items, "a hold")?;
    Ok((lines, stored.hold.expires_at.timestamp_millis()))
}

/// Removes lapsed entries from up to `limit` products that no other transaction holds; returns
/// the changed rows. Only housekeeping: a lapsed entry counts for no read, cached or not.
pub(crate) async fn sweep_lapsed(tx: &mut PgConnection, limit: i64) -> Result<Vec<Product>> {
    Ok(sqlx::query_as(&format!(
        "UPDATE products SET holds = shopnow_live_holds(holds) \
         WHERE id IN ( \
             SELECT id FROM products \
             WHERE holds <> '[]'::jsonb \
               AND jsonb_array_length(shopnow_live_holds(holds)) < jsonb_array_length(holds) \
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING {COLUMNS}"
    ))
    .bind(limit)
    .fetch_all(tx)
    .await?)
}

/// Deletes up to `limit` holds that ended (expired or released) longer than `retention` ago and
/// never became an order; returns how many.
pub(crate) async fn delete_ended(
    conn: &mut PgConnection,
    retention: std::time::Duration,
    limit: i64,
) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM holds WHERE id IN ( \
             SELECT id FROM holds \
             WHERE status <> 'converted' \
               AND coalesce(ended_at, expires_at) < now() - make_interval(secs => $1) \
             ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(retention.as_secs_f64())
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
