//! Rows locked for a change of stock or of what is held: orders and holds lock their products
//! here, in one order, and check what they ask against what is there.

use sqlx::PgConnection;

use crate::{
    error::{Error, Result},
    model::OrderLines,
};

/// An ordered product's row, locked for the rest of the transaction.
#[derive(sqlx::FromRow)]
pub(super) struct Locked {
    pub(super) id: i64,
    stock: i64,
    /// Units live holds set aside.
    reserved: i64,
    pub(super) price_cents: i64,
    currency: String,
    /// The most units one hold or one order may take: the product's own limit, or the default.
    purchase_limit: i64,
}

/// Locks every named row in product-id order (the ORDER BY runs before the lock), so that two
/// orders or holds over the same products always wait for each other, never deadlock.
/// `default_limit` is the purchase limit of a product without its own.
pub(super) async fn lock_products(
    tx: &mut PgConnection,
    lines: &OrderLines,
    default_limit: i64,
) -> Result<Vec<Locked>> {
    let product_ids = lines.product_ids();
    let locked: Vec<Locked> = sqlx::query_as(
        "SELECT id, stock, shopnow_reserved(holds) AS reserved, price_cents, currency, \
                coalesce(purchase_limit, $2) AS purchase_limit \
         FROM products WHERE id = ANY($1) AND deleted_at IS NULL ORDER BY id FOR UPDATE",
    )
    .bind(&product_ids)
    .bind(default_limit)
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

/// Every item available (in stock and not held), checked under the row locks, so that stock
/// is never oversold and never taken from a shopper's hold.
pub(super) fn check_available(locked: &[Locked], lines: &OrderLines) -> Result<()> {
    check(locked, lines, |row| row.stock - row.reserved, "available")
}

/// Every item in stock, held units included.
pub(super) fn check_on_hand(locked: &[Locked], lines: &OrderLines) -> Result<()> {
    check(locked, lines, |row| row.stock, "in stock")
}

fn check(
    locked: &[Locked],
    lines: &OrderLines,
    units: impl Fn(&Locked) -> i64,
    what: &str,
) -> Result<()> {
    let short: Vec<String> = locked
        .iter()
        .filter(|row| units(row) < lines.quantity_of(row.id))
        .map(|row| {
            format!(
                "product {} has {} {what}, {} asked",
                row.id,
                units(row),
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

/// No item asks more of its product than one hold or one order may take.
pub(super) fn check_purchase_limits(locked: &[Locked], lines: &OrderLines) -> Result<()> {
    let over: Vec<String> = locked
        .iter()
        .filter(|row| lines.quantity_of(row.id) > row.purchase_limit)
        .map(|row| {
            format!(
                "product {} allows at most {} per hold or order, {} asked",
                row.id,
                row.purchase_limit,
                lines.quantity_of(row.id)
            )
        })
        .collect();
    if over.is_empty() {
        Ok(())
    } else {
        Err(Error::OverPurchaseLimit(over.join("; ")))
    }
}

pub(super) fn single_currency(locked: &[Locked]) -> Result<&str> {
    let currency = locked[0].currency.as_str();
    if locked.iter().any(|row| row.currency != currency) {
        return Err(Error::invalid("all items must share a currency"));
    }
    Ok(currency)
}

/// Locks the rows of `product_ids` in id order, as every statement that changes several
/// products here does first: an `UPDATE ... WHERE id = ANY(...)` or `... FROM` locks rows in
/// whatever order its plan visits them, and two of those could deadlock.
pub(super) async fn lock_rows_in_id_order(
    tx: &mut PgConnection,
    product_ids: &[i64],
) -> Result<()> {
    sqlx::query("SELECT id FROM products WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(product_ids)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Locks product `id`'s row (if it exists) for the rest of the transaction: a group of writes
/// of one product takes it once, before the first of them (`group_commit`).
pub(crate) async fn lock_product(tx: &mut PgConnection, id: i64) -> Result<()> {
    lock_rows_in_id_order(tx, &[id]).await
}
