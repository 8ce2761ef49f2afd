//! List pages of `versioned`: a category page at cache speed, never staler than a product
//! read (docs/design.md, "Category pages").
//!
//! A page is two things, cached apart:
//! - **which products, in which order**: the ids (with the stamp and sort key each had) of a
//!   page read from Postgres, stored under the generation of its scope (a category, or `all`)
//!   read *before* Postgres was (`page_generation.lua`, `store_page.lua`). Every publish of a
//!   product replaces the generation of every scope that lists it now, after its commit and
//!   before its answer (`VersionedCache::publish`), unless its change can only take units
//!   away (`Product::cannot_enter_pages`). So a stored page whose generation is still
//!   current has seen every change acknowledged that could bring a product onto it: one that
//!   moved into the category, into the price range, back in stock, or up the sort. A change
//!   that takes a product *off* a page is caught on the page itself (below).
//! - **what each product shows**: its `versioned` copy, the very one a product read serves
//!   (one MGET for the page), under the same rules: the rule every copy-writing path keeps,
//!   the trust in copies (`trust`), histories. So every item is as fresh as a product read.
//!   An item whose copy is no longer the version the page was built from is checked against
//!   the page: still admitted by its filters and still at its sort key. If not, the page is
//!   read from Postgres again.
//!
//! Two cases no publish announces: a hold lapsing (no write) may put a product back in stock,
//! so an `in_stock` page is stored with the first such lapse among the products it left out
//! and not served past it; and a change shown before anyone could publish it (Redis away) ends
//! the trust in the pages of its categories until a relay publishes it (`Trust::covers_scope`).
//!
//! Cost of a warm page: 2 Redis round trips (the page with its generation, in one slot; the
//! items' copies), no Postgres; per item, one key read, and a JSON parse only for an item
//! that changed since the page was stored.

use std::sync::LazyLock;

use redis::Script;
use sqlx::PgPool;

use shopnow_contract::{keys::PageKeys, stamps};

use super::VersionedCache;
use crate::cache::strategy::Strategy;
use crate::{
    cache::{
        read::{CacheStatus, CachedCopy, PageRead, VersionedBody},
        redis::CacheError,
    },
    error::Result,
    handoff,
    model::{Listing, Position, Product, SortKey},
};

static PAGE_GENERATION: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("page_generation.lua")));
static STORE_PAGE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("store_page.lua")));

/// How many times a page read from Postgres is checked against the copies before it is served
/// from what Postgres answered (a write of one of its products raced each attempt).
const BUILD_ATTEMPTS: usize = 3;

/// A page as Redis stores it: `<generation>\n<valid until, ms, or ->\n<more: 0 or 1>\n`, then
/// one line per item, `<id> <stamp> <sort key>`, the key `-` (id sorts), `p<price>` or
/// `n<name>` (names hold no line breaks). Text rather than JSON: a warm page decodes it on
/// every read, and this costs a split and two integer parses per item.
#[derive(Debug, PartialEq, Eq)]
struct StoredPage {
    /// The scope's generation when the page was read from Postgres.
    generation: String,
    /// Not served from this time on (ms, the database's clock): a product left out for having
    /// nothing available gets units back by a hold lapsing then.
    valid_until_ms: Option<i64>,
    /// Each item: id, the stamp it was read at, its sort key.
    items: Vec<(i64, i64, SortKey)>,
    /// Whether products follow the page.
    more: bool,
}

impl StoredPage {
    fn next(&self) -> Option<Position> {
        let (id, _, key) = self.items.last().filter(|_| self.more)?;
        Some(Position {
            key: key.clone(),
            id: *id,
        })
    }

    /// `None` when a name holds a line break (a row written outside the API): such a page is
    /// served, not stored.
    fn encode(&self) -> Option<Vec<u8>> {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(64 + 32 * self.items.len());
        let until = self
            .valid_until_ms
            .map_or_else(|| "-".to_string(), |until| until.to_string());
        let _ = write!(
            out,
            "{}\n{until}\n{}\n",
            self.generation,
            u8::from(self.more)
        );
        for (id, stamp, key) in &self.items {
            let _ = write!(out, "{id} {stamp} ");
            match key {
                SortKey::None => out.push('-'),
                SortKey::Price(price) => {
                    let _ = write!(out, "p{price}");
                }
                SortKey::Name(name) if name.contains(['\n', '\r']) => return None,
                SortKey::Name(name) => {
                    out.push('n');
                    out.push_str(name);
                }
            }
            out.push('\n');
        }
        Some(out.into_bytes())
    }

    fn decode(stored: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(stored).ok()?;
        let mut lines = text.split('\n');
        let generation = lines.next()?.to_string();
        let valid_until_ms = match lines.next()? {
            "-" => None,
            until => Some(until.parse().ok()?),
        };
        let more = match lines.next()? {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        let mut items = Vec::new();
        for line in lines.filter(|line| !line.is_empty()) {
            let mut fields = line.splitn(3, ' ');
            let id = fields.next()?.parse().ok()?;
            let stamp = fields.next()?.parse().ok()?;
            let key = fields.next()?;
            let key = match key.as_bytes().first()? {
                b'-' if key.len() == 1 => SortKey::None,
                b'p' => SortKey::Price(key[1..].parse().ok()?),
                b'n' => SortKey::Name(key[1..].to_string()),
                _ => return None,
            };
            items.push((id, stamp, key));
        }
        Some(Self {
            generation,
            valid_until_ms,
            items,
            more,
        })
    }
}

impl VersionedCache {
    pub(super) async fn read_page(&self, db: &PgPool, listing: &Listing) -> Result<PageRead> {
        let keys = PageKeys::new(self.backend.prefix(), listing.scope());
        let page_key = keys.page(&listing.fingerprint());
        if self.trust.covers_scope(listing.scope()) {
            match self.cached_page(db, listing, &keys, &page_key).await {
                Ok(Some(page)) => return Ok(page),
                Ok(None) => {}
                Err(error) => return self.page_from_postgres(db, listing, Some(error)).await,
            }
        }
        self.build_page(db, listing, &keys, &page_key).await
    }

    /// The stored page, if it is current (its generation, its lapse bound) and its items,
    /// read now, still belong on it.
    async fn cached_page(
        &self,
        db: &PgPool,
        listing: &Listing,
        keys: &PageKeys<'_>,
        page_key: &str,
    ) -> Result<Option<PageRead>, CacheError> {
        let (generation, stored): (Option<String>, Option<Vec<u8>>) = self
            .backend
            .redis()
            .query(redis::cmd("MGET").arg(keys.generation()).arg(page_key))
            .await?;
        let (Some(generation), Some(stored)) = (generation, stored) else {
            return Ok(None);
        };
        let Some(page) = StoredPage::decode(&stored) else {
            tracing::warn!(page = page_key, "unreadable cached page; reading Postgres");
            return Ok(None);
        };
        let now = self.clock.now_ms();
        if page.generation != generation || page.valid_until_ms.is_some_and(|until| now >= until) {
            return Ok(None);
        }
        match self.items_of(db, listing, &page, CacheStatus::Hit).await {
            Ok(page) => Ok(page),
            Err(ItemsError::Cache(error)) => Err(error),
            // An item's fill failed in Postgres: the page is read from Postgres instead, which
            // answers the database's error if it lasts.
            Err(ItemsError::Database(error)) => {
                tracing::debug!(%error, "an item of a cached page could not be read");
                Ok(None)
            }
        }
    }

    /// Reads the page from Postgres, stores it under the generation read before, and serves
    /// its items from their copies like a cached page.
    async fn build_page(
        &self,
        db: &PgPool,
        listing: &Listing,
        keys: &PageKeys<'_>,
        page_key: &str,
    ) -> Result<PageRead> {
        for _ in 0..BUILD_ATTEMPTS {
            let generation: String = match self
                .backend
                .redis()
                .invoke(
                    PAGE_GENERATION
                        .key(keys.generation())
                        .arg(self.token("page"))
                        .arg(self.backend.ttl_secs()),
                )
                .await
            {
                Ok(generation) => generation,
                Err(error) => return self.page_from_postgres(db, listing, Some(error)).await,
            };
            let rows = self.backend.load_page(db, listing).await?;
            let page = StoredPage {
                generation,
                valid_until_ms: rows.valid_until_ms,
                items: rows
                    .items
                    .iter()
                    .map(|product| {
                        (
                            product.id,
                            stamps::stamp(product.history, product.version),
                            listing.sort.key_of(product),
                        )
                    })
                    .collect(),
                more: rows.more,
            };
            if let Some(stored) = page.encode() {
                let store: Result<i64, CacheError> = self
                    .backend
                    .redis()
                    .invoke(
                        STORE_PAGE
                            .key(keys.generation())
                            .key(page_key)
                            .arg(&page.generation)
                            .arg(stored)
                            .arg(self.backend.ttl_secs()),
                    )
                    .await;
                if let Err(error) = store {
                    return self.page_from_postgres(db, listing, Some(error)).await;
                }
            }
            match self.items_of(db, listing, &page, CacheStatus::Miss).await {
                Ok(Some(read)) => return Ok(read),
                // A write of one of its products raced this read: read the page again.
                Ok(None) => {}
                Err(ItemsError::Cache(error)) => {
                    return self.page_from_postgres(db, listing, Some(error)).await
                }
                Err(ItemsError::Database(error)) => return Err(error),
            }
        }
        self.page_from_postgres(db, listing, None).await
    }

    /// The items of `page` from their copies (one MGET), each served as a product read would
    /// serve it; `None` when one of them no longer belongs where the page has it.
    async fn items_of(
        &self,
        db: &PgPool,
        listing: &Listing,
        page: &StoredPage,
        status: CacheStatus,
    ) -> Result<Option<PageRead>, ItemsError> {
        let mut read = PageRead {
            items: Vec::with_capacity(page.items.len()),
            next: page.next(),
            status,
        };
        if page.items.is_empty() {
            return Ok(Some(read));
        }
        let mut mget = redis::cmd("MGET");
        // One buffer for every key: a page of 200 is 200 keys.
        let mut key = String::with_capacity(self.backend.prefix().len() + 32);
        for (id, _, _) in &page.items {
            self.backend.keys(*id).current_into(&mut key);
            mget.arg(key.as_str());
        }
        let copies: Vec<Option<Vec<u8>>> = self
            .backend
            .redis()
            .query(&mget)
            .await
            .map_err(ItemsError::Cache)?;
        let now = self.clock.now_ms();
        let copies: Vec<Option<CachedCopy>> = page
            .items
            .iter()
            .zip(copies)
            .map(|((id, _, _), copy)| {
                copy.and_then(|copy| CachedCopy::decode(copy.into()))
                    .filter(|copy| self.may_serve_at(*id, copy, now))
            })
            .collect();
        // Missing, or not to be served: read as a product read would (a fill under a lease),
        // all at once: a page whose copies Redis lost costs one Postgres round trip's time.
        let fills = page
            .items
            .iter()
            .zip(&copies)
            .filter(|(_, copy)| copy.is_none())
            .map(|((id, _, _), _)| self.read(db, *id));
        let mut filled = futures::future::join_all(fills).await.into_iter();
        for ((_, stamp, key), copy) in page.items.iter().zip(copies) {
            let body = match copy {
                Some(copy) => copy.body_at(now),
                None => {
                    read.status = CacheStatus::Miss;
                    let fill = filled.next().expect("one fill per copy not served");
                    fill.map_err(ItemsError::Database)?.found
                }
            };
            // Deleted since: the page has a hole.
            let Some(body) = body else {
                return Ok(None);
            };
            if stamps::stamp(body.history, body.version) != *stamp
                && !still_in_place(listing, &body, key)
            {
                return Ok(None);
            }
            read.items.push(body);
        }
        Ok(Some(read))
    }

    /// Serves the page as Postgres has it, once every version on it is published or no
    /// instance serves a copy before it (`handoff::before_showing`, as a product read from
    /// Postgres does): Redis did not answer, or writes kept racing the reads of the page.
    async fn page_from_postgres(
        &self,
        db: &PgPool,
        listing: &Listing,
        error: Option<CacheError>,
    ) -> Result<PageRead> {
        if let Some(error) = &error {
            tracing::debug!(%error, "list page read from Postgres: Redis did not answer");
        }
        let rows = self.backend.load_page(db, listing).await?;
        let shown: Vec<(i64, i64)> = rows.items.iter().map(|p| (p.id, p.version)).collect();
        if !shown.is_empty() {
            handoff::before_showing(db, &self.backend.instance, &shown, self.handoff_wait()).await;
        }
        let status = match error {
            Some(_) => CacheStatus::Bypass,
            None => CacheStatus::Miss,
        };
        Ok(PageRead::of_rows(&rows.items, rows.more, listing, status))
    }
}

/// Whether `body`, a version other than the one the page was read at, still belongs on the
/// page where it is: its filters admit it and its sort key is the one the page was ordered by.
fn still_in_place(listing: &Listing, body: &VersionedBody, key: &SortKey) -> bool {
    match serde_json::from_slice::<Product>(&body.body) {
        Ok(product) => listing.admits(&product) && listing.sort.key_of(&product) == *key,
        Err(_) => false,
    }
}

enum ItemsError {
    Cache(CacheError),
    Database(crate::error::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_page_names_where_the_next_one_starts_only_when_one_follows() {
        let mut page = StoredPage {
            generation: "g".into(),
            valid_until_ms: None,
            items: vec![(3, 7, SortKey::Price(100)), (9, 2, SortKey::Price(120))],
            more: true,
        };
        assert_eq!(
            page.next(),
            Some(Position {
                key: SortKey::Price(120),
                id: 9
            })
        );
        let read = StoredPage::decode(&page.encode().unwrap()).unwrap();
        assert_eq!(read, page);
        page.more = false;
        assert_eq!(page.next(), None);
        page.items
            .push((4, 1, SortKey::Name("Mug, blue 350 ml".into())));
        page.items.push((5, 1, SortKey::None));
        page.valid_until_ms = Some(1_765_000_000_000);
        assert_eq!(StoredPage::decode(&page.encode().unwrap()).unwrap(), page);
        page.items.push((6, 1, SortKey::Name("two\nlines".into())));
        assert_eq!(page.encode(), None, "not stored");
        assert_eq!(StoredPage::decode(b"g\n-\n2\n"), None);
    }
}
