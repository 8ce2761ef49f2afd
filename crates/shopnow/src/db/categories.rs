//! Category queries. A category's place in the tree is part of every product it lists
//! (`products.listed_in`), so a move rewrites those products in the same transaction: their
//! versions rise and their outbox rows are written by the table's triggers, like any change.

use sqlx::PgConnection;

use super::{is_unique_violation, products::COLUMNS};
use crate::{
    error::{Error, Result},
    model::{Category, CategoryPatch, NewCategory, Product, MAX_CATEGORIES, MAX_DEPTH},
};

const SLUG_KEY: &str = "categories_slug_key";

/// The columns `Category` is read from, where `c` names the categories table.
const CATEGORY_COLUMNS: &str = "c.slug, c.name, \
     (SELECT slug FROM categories parent WHERE parent.id = c.parent_id) AS parent, \
     ARRAY(SELECT slug FROM categories child WHERE child.parent_id = c.id \
           ORDER BY slug COLLATE \"C\") AS children";

#[derive(sqlx::FromRow)]
struct CategoryRow {
    slug: String,
    name: String,
    parent: Option<String>,
    children: Vec<String>,
}

impl From<CategoryRow> for Category {
    fn from(row: CategoryRow) -> Self {
        Self {
            slug: row.slug,
            name: row.name,
            parent: row.parent,
            children: row.children,
        }
    }
}

/// Every category, by slug.
pub(crate) async fn all(conn: &mut PgConnection) -> Result<Vec<Category>> {
    let rows: Vec<CategoryRow> = sqlx::query_as(&format!(
        "SELECT {CATEGORY_COLUMNS} FROM categories c ORDER BY c.slug COLLATE \"C\""
    ))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Category::from).collect())
}

pub(crate) async fn find(conn: &mut PgConnection, slug: &str) -> Result<Option<Category>> {
    let row: Option<CategoryRow> = sqlx::query_as(&format!(
        "SELECT {CATEGORY_COLUMNS} FROM categories c WHERE c.slug = $1"
    ))
    .bind(slug)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Category::from))
}

pub(crate) fn not_found(slug: &str) -> Error {
    Error::NotFound(format!("category {slug:?} does not exist"))
}

/// The id and depth (a root is 1) of category `slug`.
async fn locate(conn: &mut PgConnection, slug: &str) -> Result<(i64, usize)> {
    let found: Option<(i64, i32)> = sqlx::query_as(
        "WITH RECURSIVE up(id, parent_id) AS ( \
             SELECT id, parent_id FROM categories WHERE slug = $1 \
             UNION ALL \
             SELECT c.id, c.parent_id FROM categories c JOIN up ON c.id = up.parent_id) \
         SELECT (SELECT id FROM categories WHERE slug = $1), count(*)::int FROM up \
         HAVING count(*) > 0",
    )
    .bind(slug)
    .fetch_optional(conn)
    .await?;
    let (id, depth) = found.ok_or_else(|| not_found(slug))?;
    Ok((id, depth as usize))
}

pub(crate) async fn insert(conn: &mut PgConnection, new: &NewCategory) -> Result<Category> {
    // Serialises changes of the tree: two concurrent moves could otherwise make a cycle that
    // neither sees alone.
    lock_tree(conn).await?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM categories")
        .fetch_one(&mut *conn)
        .await?;
    if count >= MAX_CATEGORIES {
        return Err(Error::CategoryConflict(format!(
            "a shop has at most {MAX_CATEGORIES} categories"
        )));
    }
    let parent_id = match &new.parent {
        None => None,
        Some(parent) => {
            let (id, depth) = locate(conn, parent).await.map_err(unknown_parent)?;
            if depth >= MAX_DEPTH {
                return Err(too_deep());
            }
            Some(id)
        }
    };
    sqlx::query("INSERT INTO categories (slug, name, parent_id) VALUES ($1, $2, $3)")
        .bind(&new.slug)
        .bind(&new.name)
        .bind(parent_id)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e, SLUG_KEY) {
                Error::CategoryConflict(format!("a category with slug {:?} exists", new.slug))
            } else {
                e.into()
            }
        })?;
    find(conn, &new.slug)
        .await?
        .ok_or_else(|| not_found(&new.slug))
}

/// Renames and/or moves category `slug`; returns it and the live products whose membership
/// changed (those it lists, when it moved).
pub(crate) async fn update(
    conn: &mut PgConnection,
    slug: &str,
    patch: &CategoryPatch,
) -> Result<(Category, Vec<Product>)> {
    lock_tree(conn).await?;
    let (id, _) = locate(conn, slug).await?;
    if let Some(name) = &patch.name {
        sqlx::query("UPDATE categories SET name = $2 WHERE id = $1")
            .bind(id)
            .bind(name)
            .execute(&mut *conn)
            .await?;
    }
    let mut relisted = Vec::new();
    if let Some(parent) = &patch.parent {
        let parent_id = match parent {
            None => None,
            Some(parent) => {
                let (parent_id, depth) = locate(conn, parent).await.map_err(unknown_parent)?;
                if depth + height(conn, id).await? > MAX_DEPTH {
                    return Err(too_deep());
                }
                if under(conn, parent_id, id).await? {
                    return Err(Error::CategoryConflict(format!(
                        "category {slug:?} cannot move under {parent:?}: that is inside it"
                    )));
                }
                Some(parent_id)
            }
        };
        let moved = sqlx::query(
            "UPDATE categories SET parent_id = $2 WHERE id = $1 AND parent_id IS DISTINCT FROM $2",
        )
        .bind(id)
        .bind(parent_id)
        .execute(&mut *conn)
        .await?;
        if moved.rows_affected() > 0 {
            // Setting `listed_in` makes the products' trigger compute it again from the tree
            // as it is now; the version trigger then raises the version of each that changed.
            relisted = sqlx::query_as(&format!(
                "UPDATE products SET listed_in = '{{}}' \
                 WHERE listed_in @> ARRAY[$1::bigint] AND deleted_at IS NULL RETURNING {COLUMNS}"
            ))
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
        }
    }
    let category = find(conn, slug).await?.ok_or_else(|| not_found(slug))?;
    Ok((category, relisted))
}

/// Deletes category `slug`, which must list nothing: no category under it and no product (a
/// deleted product's membership is left as it was and does not count).
pub(crate) async fn delete(conn: &mut PgConnection, slug: &str) -> Result<()> {
    lock_tree(conn).await?;
    let (id, _) = locate(conn, slug).await?;
    let (children, products): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM categories WHERE parent_id = $1), \
                (SELECT count(*) FROM products WHERE category_ids @> ARRAY[$1::bigint] \
                    AND deleted_at IS NULL)",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    if children > 0 || products > 0 {
        return Err(Error::CategoryConflict(format!(
            "category {slug:?} still lists {children} categories and {products} products: move \
             or delete the categories and take the products out of it first"
        )));
    }
    // Deleted products may still name it: they are never shown again, so it goes from them.
    sqlx::query(
        "UPDATE products SET category_ids = array_remove(category_ids, $1) \
         WHERE category_ids @> ARRAY[$1::bigint] AND deleted_at IS NOT NULL",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM categories WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn lock_tree(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("LOCK TABLE categories IN SHARE ROW EXCLUSIVE MODE")
        .execute(conn)
        .await?;
    Ok(())
}

/// How many levels category `id` and those under it span (1 for a leaf).
async fn height(conn: &mut PgConnection, id: i64) -> Result<usize> {
    let height: i32 = sqlx::query_scalar(
        "WITH RECURSIVE down(id, level) AS ( \
             SELECT id, 1 FROM categories WHERE id = $1 \
             UNION ALL \
             SELECT c.id, down.level + 1 FROM categories c JOIN down ON c.parent_id = down.id) \
         SELECT max(level) FROM down",
    )
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok(height as usize)
}

/// Whether category `candidate` is `ancestor` or below it.
async fn under(conn: &mut PgConnection, candidate: i64, ancestor: i64) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "WITH RECURSIVE up(id, parent_id) AS ( \
             SELECT id, parent_id FROM categories WHERE id = $1 \
             UNION ALL \
             SELECT c.id, c.parent_id FROM categories c JOIN up ON c.id = up.parent_id) \
         SELECT EXISTS (SELECT 1 FROM up WHERE id = $2)",
    )
    .bind(candidate)
    .bind(ancestor)
    .fetch_one(conn)
    .await?)
}

fn unknown_parent(error: Error) -> Error {
    match error {
        Error::NotFound(message) => Error::invalid(format!("parent: {message}")),
        other => other,
    }
}

fn too_deep() -> Error {
    Error::CategoryConflict(format!(
        "the tree is at most {MAX_DEPTH} levels deep (a root is level 1)"
    ))
}

/// The id of category `slug`, for a list page's scope.
pub(crate) async fn id_of(conn: &mut PgConnection, slug: &str) -> Result<i64> {
    sqlx::query_scalar("SELECT id FROM categories WHERE slug = $1")
        .bind(slug)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| not_found(slug))
}
