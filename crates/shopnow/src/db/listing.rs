//! The list page query: a category and its descendants, filters, a sort and a keyset position.

use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::{categories, products::COLUMNS};
use crate::{
    error::Result,
    model::{Listing, Product, Sort, SortKey},
};

/// One page as Postgres has it now.
pub(crate) struct PageRows {
    /// Up to `limit` products, in the listing's order.
    pub items: Vec<Product>,
    /// Whether products follow this page.
    pub more: bool,
    /// For `in_stock` pages: the first time a product the page left out for having nothing
    /// available gets units back by a hold lapsing (ms, the database's clock). A lapse is no
    /// write, so nothing else tells a cached page that the product now belongs on it.
    pub valid_until_ms: Option<i64>,
}

/// Reads one page of `listing`; a category that does not exist is `NotFound`.
pub(crate) async fn page(conn: &mut PgConnection, listing: &Listing) -> Result<PageRows> {
    let scope = listing.category.as_deref();
    let mut query = QueryBuilder::<Postgres>::new(format!(
        "SELECT {COLUMNS} FROM products WHERE deleted_at IS NULL"
    ));
    push_filters(&mut query, listing, scope);
    if let Some(after) = &listing.after {
        match (listing.sort, &after.key) {
            (Sort::Id, _) => query.push(" AND id > ").push_bind(after.id),
            (Sort::Newest, _) => query.push(" AND id < ").push_bind(after.id),
            (Sort::Price, SortKey::Price(price)) => query
                .push(" AND (price_cents, id) > (")
                .push_bind(*price)
                .push(", ")
                .push_bind(after.id)
                .push(")"),
            (Sort::PriceDescending, SortKey::Price(price)) => query
                .push(" AND (price_cents, id) < (")
                .push_bind(*price)
                .push(", ")
                .push_bind(after.id)
                .push(")"),
            (Sort::Name, SortKey::Name(name)) => query
                .push(" AND (name COLLATE \"C\", id) > (")
                .push_bind(name.clone())
                .push(", ")
                .push_bind(after.id)
                .push(")"),
            // `Listing::read_cursor` gives each sort its own kind of key.
            _ => query.push(" AND false"),
        };
    }
    query.push(match listing.sort {
        Sort::Id => " ORDER BY id",
        Sort::Newest => " ORDER BY id DESC",
        Sort::Price => " ORDER BY price_cents, id",
        Sort::PriceDescending => " ORDER BY price_cents DESC, id DESC",
        Sort::Name => " ORDER BY name COLLATE \"C\", id",
    });
    // One row more than asked tells whether a next page exists.
    query.push(" LIMIT ").push_bind(listing.limit + 1);
    let mut items: Vec<Product> = query.build_query_as().fetch_all(&mut *conn).await?;
    let more = items.len() as i64 > listing.limit;
    items.truncate(listing.limit as usize);
    if let (Some(slug), true) = (scope, items.is_empty()) {
        // An empty page of a category that does not exist is a 404 (one query more only
        // when a page is empty).
        categories::id_of(conn, slug).await?;
    }

    let valid_until_ms = if listing.in_stock {
        let mut lapse = QueryBuilder::<Postgres>::new(
            "SELECT min(shopnow_next_lapse(holds)) FROM products \
             WHERE deleted_at IS NULL AND holds <> '[]'::jsonb",
        );
        push_scope_and_prices(&mut lapse, listing, scope);
        lapse.push(" AND stock - shopnow_reserved(holds) <= 0");
        lapse.build_query_scalar().fetch_one(&mut *conn).await?
    } else {
        None
    };
    Ok(PageRows {
        items,
        more,
        valid_until_ms,
    })
}

fn push_filters(query: &mut QueryBuilder<'_, Postgres>, listing: &Listing, scope: Option<&str>) {
    push_scope_and_prices(query, listing, scope);
    if listing.in_stock {
        query.push(" AND stock - shopnow_reserved(holds) > 0");
    }
}

fn push_scope_and_prices(
    query: &mut QueryBuilder<'_, Postgres>,
    listing: &Listing,
    scope: Option<&str>,
) {
    if let Some(scope) = scope {
        query
            .push(" AND listed_in_slugs @> ARRAY[")
            .push_bind(scope.to_owned())
            .push("::text]");
    }
    if let Some(min) = listing.min_price {
        query.push(" AND price_cents >= ").push_bind(min);
    }
    if let Some(max) = listing.max_price {
        query.push(" AND price_cents <= ").push_bind(max);
    }
}
