//! Product queries. No statement here sets `version` or `updated_at`: the table's trigger
//! (`products_own_version`) raises the version by one whenever a statement changes what a reader
//! sees, for the API and every other SQL client alike. Each statement returns the row as the
//! trigger left it, so the version a caller publishes is exactly the one Postgres committed.

use sqlx::PgConnection;

use super::is_unique_violation;
use crate::{
    error::{Error, Result},
    model::{NewProduct, Product, ProductPatch, ProductState, MAX_STOCK},
};

/// The columns `Product` is read from: `history` is the database's, read once per statement
/// (an uncorrelated subquery); `read_at_ms` is the time its holds are judged by.
pub(super) const COLUMNS: &str = "id, sku, name, description, price_cents, currency, stock, \
     purchase_limit, version, updated_at, (SELECT shopnow_history()) AS history, holds::text AS holds, \
     shopnow_now_ms() AS read_at_ms, category_slugs AS categories, listed_in_slugs AS listed_in";

/// `COLUMNS` for a statement where `p` names the products table.
pub(super) const QUALIFIED_COLUMNS: &str = "p.id, p.sku, p.name, p.description, p.price_cents, \
     p.currency, p.stock, p.purchase_limit, p.version, p.updated_at, (SELECT shopnow_history()) AS history, \
     p.holds::text AS holds, shopnow_now_ms() AS read_at_ms, \
     p.category_slugs AS categories, p.listed_in_slugs AS listed_in";

const LIVE_SKU_INDEX: &str = "products_live_sku_key";

/// A product row with whether it is deleted: what a state is read from.
#[derive(sqlx::FromRow)]
struct StateRow {
    #[sqlx(flatten)]
    product: Product,
    deleted: bool,
}

impl StateRow {
    fn into_state(self) -> ProductState {
        match self.deleted {
            false => ProductState::Live(self.product),
            true => ProductState::Deleted {
                id: self.product.id,
                version: self.product.version,
                history: self.product.history,
            },
        }
    }
}

/// The state of one product: live, deleted (with the deletion's version), or `None` if the id
/// was never used.
pub(crate) async fn load_state(conn: &mut PgConnection, id: i64) -> Result<Option<ProductState>> {
    let row: Option<StateRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, deleted_at IS NOT NULL AS deleted FROM products WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(StateRow::into_state))
}

/// The states of the products `ids` that exist, in one query (for the relay's batches).
pub(crate) async fn load_states(conn: &mut PgConnection, ids: &[i64]) -> Result<Vec<ProductState>> {
    let rows: Vec<StateRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, deleted_at IS NOT NULL AS deleted FROM products WHERE id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(StateRow::into_state).collect())
}

pub(crate) async fn insert(conn: &mut PgConnection, new: &NewProduct) -> Result<Product> {
    sqlx::query_as(&format!(
        "INSERT INTO products (sku, name, description, price_cents, currency, stock, \
             purchase_limit, category_ids) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, shopnow_category_ids($8)) RETURNING {COLUMNS}"
    ))
    .bind(&new.sku)
    .bind(&new.name)
    .bind(&new.description)
    .bind(new.price_cents)
    .bind(&new.currency)
    .bind(new.stock)
    .bind(new.purchase_limit)
    .bind(&new.categories)
    .fetch_one(conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, LIVE_SKU_INDEX) {
            Error::DuplicateSku(new.sku.clone())
        } else {
            unknown_category(e)
        }
    })
}

pub(crate) async fn update(
    conn: &mut PgConnection,
    id: i64,
    patch: &ProductPatch,
) -> Result<Product> {
    sqlx::query_as(&format!(
        "UPDATE products SET name = COALESCE($2, name), description = COALESCE($3, description), \
         price_cents = COALESCE($4, price_cents), \
         purchase_limit = CASE WHEN $5 THEN $6 ELSE purchase_limit END, \
         category_ids = CASE WHEN $7 THEN shopnow_category_ids($8) ELSE category_ids END \
         WHERE id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&patch.name)
    .bind(&patch.description)
    .bind(patch.price_cents)
    .bind(patch.purchase_limit.is_some())
    .bind(patch.purchase_limit.flatten())
    .bind(patch.categories.is_some())
    .bind(patch.categories.as_deref().unwrap_or_default())
    .fetch_optional(conn)
    .await
    .map_err(unknown_category)?
    .ok_or_else(|| Error::product_not_found(id))
}

/// `shopnow_category_ids` refuses a slug no category has, with the slug in its message.
fn unknown_category(error: sqlx::Error) -> Error {
    match &error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some(UNKNOWN_CATEGORY) => {
            Error::invalid(db.message().to_string())
        }
        _ => error.into(),
    }
}

/// The SQLSTATE `shopnow_category_ids` raises for an unknown slug (`foreign_key_violation`).
const UNKNOWN_CATEGORY: &str = "23503";

/// Sets the stock, inside the caller's transaction; never below what live holds reserve.
pub(crate) async fn set_stock(conn: &mut PgConnection, id: i64, stock: i64) -> Result<Product> {
    let (_, reserved) = lock_stock(conn, id).await?;
    if stock < reserved {
        return Err(Error::InsufficientStock(format!(
            "product {id} has {reserved} units in live holds; the stock cannot go below that"
        )));
    }
    sqlx::query_as(&format!(
        "UPDATE products SET stock = $2 WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(stock)
    .fetch_one(conn)
    .await
    .map_err(Into::into)
}

/// Locks a live product's row for the rest of the transaction; its stock and the units its
/// live holds reserve.
async fn lock_stock(conn: &mut PgConnection, id: i64) -> Result<(i64, i64)> {
    let locked: Option<(i64, i64)> = sqlx::query_as(
        "SELECT stock, shopnow_reserved(holds) FROM products \
         WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    locked.ok_or_else(|| Error::product_not_found(id))
}

/// Adds `delta` to the stock, inside the caller's transaction. The bounds are checked by the
/// UPDATE on the row it locks (Postgres checks them again on the latest row if another write
/// changed it meanwhile), so concurrent adjustments can never take the stock below what live
/// holds reserve (nor below zero). One round trip when it succeeds: a group commit runs the
/// writes of a product one after another under its row lock.
pub(crate) async fn adjust_stock(conn: &mut PgConnection, id: i64, delta: i64) -> Result<Product> {
    let adjusted: Option<Product> = sqlx::query_as(&format!(
        "UPDATE products SET stock = stock + $2 \
         WHERE id = $1 AND deleted_at IS NULL \
           AND stock + $2 >= shopnow_reserved(holds) AND stock + $2 <= $3 \
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(delta)
    .bind(MAX_STOCK)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(product) = adjusted {
        return Ok(product);
    }
    // Refused (or no such product): say why, from the row as it is.
    let (stock, reserved) = lock_stock(conn, id).await?;
    let new_stock = stock + delta;
    if new_stock < reserved {
        return Err(Error::InsufficientStock(format!(
            "product {id} has {} available ({stock} in stock, {reserved} held); cannot take {}",
            stock - reserved,
            -delta
        )));
    }
    if new_stock > MAX_STOCK {
        return Err(Error::invalid(format!(
            "stock would be {new_stock}, above the limit of {MAX_STOCK}"
        )));
    }
    Err(Error::Internal(anyhow::anyhow!(
        "the adjustment of product {id} by {delta} was refused, yet {stock} + {delta} fits"
    )))
}

/// Marks the product deleted. The deletion is a version of its own, so a cache can store it
/// as a tombstone that answers 404.
pub(crate) async fn delete(conn: &mut PgConnection, id: i64) -> Result<ProductState> {
    let deleted: Option<(i64, i64)> = sqlx::query_as(
        "UPDATE products SET deleted_at = now() \
         WHERE id = $1 AND deleted_at IS NULL RETURNING version, (SELECT shopnow_history())",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    deleted
        .map(|(version, history)| ProductState::Deleted {
            id,
            version,
            history,
        })
        .ok_or_else(|| Error::product_not_found(id))
}

/// Inserts `count` demo products with SKUs `DEMO-000001`...; existing SKUs are left alone, so
/// seeding twice changes nothing. Returns how many were inserted.
pub(crate) async fn seed_demo(conn: &mut PgConnection, count: i64) -> Result<u64> {
    // A small shop's navigation, so that the demo catalog browses by category.
    sqlx::query(
        "INSERT INTO categories (slug, name, parent_id) \
         SELECT slug, name, NULL FROM (VALUES ('apparel', 'Apparel'), ('home', 'Home'), \
             ('accessories', 'Accessories')) AS root(slug, name) \
         ON CONFLICT (slug) DO NOTHING",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO categories (slug, name, parent_id) \
         SELECT leaf.slug, leaf.name, (SELECT id FROM categories WHERE slug = leaf.parent) \
         FROM (VALUES ('t-shirts', 'T-shirts', 'apparel'), ('hoodies', 'Hoodies', 'apparel'), \
             ('mugs', 'Mugs', 'home'), ('posters', 'Posters', 'home'), \
             ('bags', 'Bags', 'accessories'), ('hats', 'Hats', 'accessories')) \
             AS leaf(slug, name, parent) \
         ON CONFLICT (slug) DO NOTHING",
    )
    .execute(&mut *conn)
    .await?;
    let done = sqlx::query(
        "INSERT INTO products (sku, name, description, price_cents, currency, stock, category_ids) \
         SELECT format('DEMO-%s', lpad(n::text, 6, '0')), \
                format('Demo product %s', n), \
                'A product from shopnow seed, for trying the API.', \
                100 + (n * 37) % 9900, 'USD', (n * 13) % 200, \
                ARRAY(SELECT id FROM categories WHERE slug = (ARRAY['t-shirts', 'hoodies', \
                    'mugs', 'posters', 'bags', 'hats'])[1 + n % 6]) \
         FROM generate_series(1, $1::bigint) AS n \
         ON CONFLICT (sku) WHERE deleted_at IS NULL DO NOTHING",
    )
    .bind(count)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The highest product id ever given, if any (the sampler draws ids below it).
pub(crate) async fn max_id(conn: &mut PgConnection) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT max(id) FROM products")
        .fetch_one(conn)
        .await?)
}

/// The version of a live product: the one query of every read in the article's design.
#[cfg(feature = "article-design")]
pub(crate) async fn live_version(conn: &mut PgConnection, id: i64) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT version FROM products WHERE id = $1 AND deleted_at IS NULL")
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}
