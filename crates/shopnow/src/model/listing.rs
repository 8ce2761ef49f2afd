//! List pages (`GET /v1/products`): what a page asks for (category, filters, sort, position),
//! its opaque cursor, and the check that a page still shows what its membership and order say.
//! Pure logic: the cache and Postgres both build on it.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::{Deserialize, Serialize};

use super::Product;
use crate::error::Error;

/// The scope of the list of every product (no `category`): its pages' keys and generation.
/// Not a category slug (`validate_slug` refuses it).
pub(crate) const ALL_SCOPE: &str = "all";

pub(crate) const MAX_PAGE: i64 = 200;
pub(crate) const DEFAULT_PAGE: i64 = 50;

/// The order of a list page. Ties (same price, same name) are broken by id, so every order is
/// total and a cursor names one position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Sort {
    /// Oldest first (ids ascending): the order before sorts existed.
    Id,
    /// Newest first.
    Newest,
    Price,
    PriceDescending,
    /// By name, code point by code point (`COLLATE "C"`).
    Name,
}

impl Sort {
    pub(crate) fn parse(sort: &str) -> Result<Self, Error> {
        match sort {
            "id" => Ok(Self::Id),
            "newest" => Ok(Self::Newest),
            "price" => Ok(Self::Price),
            "-price" => Ok(Self::PriceDescending),
            "name" => Ok(Self::Name),
            other => Err(Error::invalid(format!(
                "sort must be one of id, newest, price, -price, name (not {other:?})"
            ))),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Newest => "newest",
            Self::Price => "price",
            Self::PriceDescending => "-price",
            Self::Name => "name",
        }
    }

    /// What a product is ordered by, besides its id.
    pub(crate) fn key_of(self, product: &Product) -> SortKey {
        match self {
            Self::Id | Self::Newest => SortKey::None,
            Self::Price | Self::PriceDescending => SortKey::Price(product.price_cents),
            Self::Name => SortKey::Name(product.name.clone()),
        }
    }
}

/// A product's place in a sort, besides its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum SortKey {
    None,
    Price(i64),
    Name(String),
}

/// Where a page starts: after the product with this key and id, in the page's sort.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Position {
    pub key: SortKey,
    pub id: i64,
}

/// What one list page asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listing {
    /// A category's slug: it and every category under it. `None`: every live product.
    pub category: Option<String>,
    /// Only products with `available` > 0.
    pub in_stock: bool,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub sort: Sort,
    pub limit: i64,
    pub after: Option<Position>,
}

impl Listing {
    /// The scope whose generation a cached page of this listing is checked against.
    pub(crate) fn scope(&self) -> &str {
        self.category.as_deref().unwrap_or(ALL_SCOPE)
    }

    /// Names the listing's filters and sort (not its size or position): a cursor carries it,
    /// so that a cursor of another listing is refused rather than read as a position here.
    fn filters(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.category.as_deref().unwrap_or(""),
            self.in_stock,
            self.min_price.map(|p| p.to_string()).unwrap_or_default(),
            self.max_price.map(|p| p.to_string()).unwrap_or_default(),
            self.sort.as_str()
        )
    }

    /// The page's cache fingerprint: its filters, size and position, hashed.
    pub(crate) fn fingerprint(&self) -> String {
        let position = match &self.after {
            None => String::new(),
            Some(position) => format!("{}|{}", key_text(&position.key), position.id),
        };
        format!(
            "{:016x}",
            fnv1a(format!("{}|{}|{position}", self.filters(), self.limit).as_bytes())
        )
    }

    /// Whether `product`, as shown, belongs on a page of this listing (its filters; the
    /// position is the page's).
    pub(crate) fn admits(&self, product: &Product) -> bool {
        self.category
            .as_ref()
            .is_none_or(|category| product.listed_in.contains(category))
            && self.min_price.is_none_or(|min| product.price_cents >= min)
            && self.max_price.is_none_or(|max| product.price_cents <= max)
            && (!self.in_stock || product.available > 0)
    }

    /// `product`'s place in this listing's order.
    pub(crate) fn position_of(&self, product: &Product) -> Position {
        Position {
            key: self.sort.key_of(product),
            id: product.id,
        }
    }

    /// The cursor of the page after one ending at `last`.
    pub(crate) fn cursor_after(&self, last: &Position) -> String {
        let cursor = Cursor {
            listing: fnv1a(self.filters().as_bytes()),
            key: last.key.clone(),
            id: last.id,
            check: 0,
        };
        let check = cursor.checksum();
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Cursor { check, ..cursor }).unwrap_or_default())
    }

    /// Reads `cursor` as this listing's position.
    pub(crate) fn read_cursor(&self, cursor: &str) -> Result<Position, Error> {
        let bad =
            || Error::invalid("cursor is not one this listing gave (pass next_cursor as it came)");
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if cursor.check != cursor.checksum() {
            return Err(bad());
        }
        if cursor.listing != fnv1a(self.filters().as_bytes()) {
            return Err(Error::invalid(
                "cursor belongs to another listing (category, filters or sort changed): start \
                 again without it",
            ));
        }
        let key_fits = matches!(
            (self.sort, &cursor.key),
            (Sort::Id | Sort::Newest, SortKey::None)
                | (Sort::Price | Sort::PriceDescending, SortKey::Price(_))
                | (Sort::Name, SortKey::Name(_))
        );
        if !key_fits || cursor.id < 0 {
            return Err(bad());
        }
        Ok(Position {
            key: cursor.key,
            id: cursor.id,
        })
    }
}

/// An opaque cursor's content: the listing it belongs to, a position, and a checksum that
/// catches a cursor changed by hand. Not a secret: a forged cursor is only a position.
#[derive(Serialize, Deserialize)]
struct Cursor {
    #[serde(rename = "l")]
    listing: u64,
    #[serde(rename = "k")]
    key: SortKey,
    #[serde(rename = "i")]
    id: i64,
    #[serde(rename = "c")]
    check: u64,
}

impl Cursor {
    fn checksum(&self) -> u64 {
        fnv1a(
            format!(
                "shopnow-cursor|{}|{}|{}",
                self.listing,
                key_text(&self.key),
                self.id
            )
            .as_bytes(),
        )
    }
}

fn key_text(key: &SortKey) -> String {
    match key {
        SortKey::None => String::new(),
        SortKey::Price(price) => format!("p{price}"),
        SortKey::Name(name) => format!("n{name}"),
    }
}

/// FNV-1a, 64 bits: stable across builds and platforms (cursors outlive a deployment), unlike
/// the standard library's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(sort: Sort) -> Listing {
        Listing {
            category: Some("shoes".into()),
            in_stock: true,
            min_price: Some(100),
            max_price: None,
            sort,
            limit: 50,
            after: None,
        }
    }

    fn product(id: i64, price: i64, name: &str) -> Product {
        let json = format!(
            r#"{{"id":{id},"sku":"S{id}","name":"{name}","description":"","price_cents":{price},
            "currency":"USD","stock":3,"reserved":0,"available":3,"version":1,
            "categories":["running"],"listed_in":["running","shoes"],
            "updated_at":"2026-12-08T10:00:00Z"}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn a_cursor_reads_back_as_its_position_in_its_own_listing_only() {
        let by_name = listing(Sort::Name);
        let cursor = by_name.cursor_after(&by_name.position_of(&product(7, 150, "Trail")));
        assert_eq!(
            by_name.read_cursor(&cursor).unwrap(),
            Position {
                key: SortKey::Name("Trail".into()),
                id: 7
            }
        );
        let by_price = listing(Sort::Price);
        assert!(by_price.read_cursor(&cursor).is_err(), "another sort");
        let other_category = Listing {
            category: Some("hats".into()),
            ..by_name.clone()
        };
        assert!(other_category.read_cursor(&cursor).is_err());
        assert!(by_name.read_cursor("not-base64!").is_err());
        // Changed by hand: the id raised, the checksum kept.
        let mut raw: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&cursor).unwrap()).unwrap();
        raw["i"] = 8.into();
        let tampered = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&raw).unwrap());
        assert!(by_name.read_cursor(&tampered).is_err());
    }

    #[test]
    fn a_listing_admits_what_its_filters_say() {
        let shoes = listing(Sort::Price);
        assert!(shoes.admits(&product(1, 150, "A")));
        assert!(!shoes.admits(&product(1, 99, "A")), "below min_price");
        let mut sold_out = product(1, 150, "A");
        sold_out.available = 0;
        assert!(!shoes.admits(&sold_out));
        let hats = Listing {
            category: Some("hats".into()),
            ..shoes
        };
        assert!(!hats.admits(&product(1, 150, "A")));
    }

    #[test]
    fn fingerprints_tell_pages_apart() {
        let first = listing(Sort::Price);
        let second = Listing {
            after: Some(Position {
                key: SortKey::Price(150),
                id: 7,
            }),
            ..first.clone()
        };
        assert_ne!(first.fingerprint(), second.fingerprint());
        assert_ne!(
            first.fingerprint(),
            Listing {
                limit: 20,
                ..first.clone()
            }
            .fingerprint()
        );
        assert_eq!(first.fingerprint(), first.clone().fingerprint());
    }
}
