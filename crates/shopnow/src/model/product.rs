//! The product model, and the validation of what clients send to create or change one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sqlx::{postgres::PgRow, Row};

use super::{
    category::validate_product_categories,
    hold::{Reservation, Reservations},
    order::MAX_QUANTITY,
};
use crate::error::Error;

/// Largest stock a product may hold; keeps `stock + delta` far from integer overflow.
pub(crate) const MAX_STOCK: i64 = 1_000_000_000_000;
/// Largest price, 10 billion in the currency's main unit.
pub(crate) const MAX_PRICE_CENTS: i64 = 1_000_000_000_000;

/// A product as the API shows it. One `version` always carries the same fields, but for
/// `reserved` and `available`, which also follow the clock: a hold stops counting when it
/// expires, with no new version (the ETag tells them apart: `ProductView`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    #[schema(example = 42)]
    pub id: i64,
    #[schema(example = "TSHIRT-RED-M")]
    pub sku: String,
    #[schema(example = "Red T-shirt, M")]
    pub name: String,
    pub description: String,
    #[schema(example = 1999)]
    pub price_cents: i64,
    #[schema(example = "USD")]
    pub currency: String,
    /// Units on hand, held ones included.
    #[schema(example = 17)]
    pub stock: i64,
    /// The slugs of the categories the product is in, sorted.
    #[serde(default)]
    #[schema(example = json!(["t-shirts"]))]
    pub categories: Vec<String>,
    /// Its categories and every one above them, sorted: the category pages that list it
    /// (`GET /v1/products?category=<slug>`), and a storefront's breadcrumbs.
    #[serde(default)]
    #[schema(example = json!(["apparel", "t-shirts"]))]
    pub listed_in: Vec<String>,
    /// The most units of this product one hold or one order may take; `null`: the shop's
    /// default (`SHOPNOW_MAX_LINE_QUANTITY`). More answers 422 `over_purchase_limit`.
    #[schema(example = 2, minimum = 1, maximum = 10_000)]
    pub purchase_limit: Option<i64>,
    /// Units in holds that have not expired, been released or become orders.
    #[schema(example = 2)]
    pub reserved: i64,
    /// `stock - reserved`: what an order or a hold can take now. Never below 0.
    #[schema(example = 15)]
    pub available: i64,
    /// Starts at 1 and grows by one with every change of the product, stock included.
    #[schema(example = 3)]
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    /// The database history this row was read from (`shopnow_contract::stamps`): not part of
    /// the JSON, but of the ETag and of the cached copy's stamp.
    #[serde(skip)]
    pub history: i64,
    /// Every hold entry the row lists, lapsed or not: what `reserved` is computed from at any
    /// later time (a cached copy carries them).
    #[serde(skip)]
    pub reservations: Reservations,
    /// The database's time when the row was read, in ms since the epoch: `reserved` is as of
    /// then.
    #[serde(skip)]
    pub read_at_ms: i64,
    /// Set by a write that changes nothing a list page filters or orders by except to take
    /// units away or add them to a product that had some (a hold, an order, an adjustment of a
    /// product in stock, sweeping lapsed holds): its
    /// publish need not renew the generations of the product's pages (`cache::versioned::pages`
    /// says why that is safe). False for every row read from Postgres: a change of unknown
    /// cause (the relay's) renews them.
    #[serde(skip)]
    pub cannot_enter_pages: bool,
}

impl Product {
    /// The product as a read at `now_ms` (the database's clock) shows it.
    pub fn at(&self, now_ms: i64) -> Self {
        let reserved = self.reservations.reserved_at(now_ms);
        Self {
            reserved,
            available: self.stock - reserved,
            read_at_ms: now_ms,
            ..self.clone()
        }
    }

    /// How many of the row's hold entries had lapsed when it was read.
    pub fn lapsed(&self) -> usize {
        self.reservations.lapsed_at(self.read_at_ms)
    }
}

/// The row as a query returns it: `holds` as text (the JSON list of entries), and the
/// database's time of the read, from which `reserved` and `available` follow.
impl<'r> sqlx::FromRow<'r, PgRow> for Product {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let holds: String = row.try_get("holds")?;
        let entries: Vec<Reservation> =
            serde_json::from_str(&holds).map_err(|error| sqlx::Error::ColumnDecode {
                index: "holds".into(),
                source: Box::new(error),
            })?;
        let product = Self {
            id: row.try_get("id")?,
            sku: row.try_get("sku")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            price_cents: row.try_get("price_cents")?,
            currency: row.try_get("currency")?,
            stock: row.try_get("stock")?,
            categories: row.try_get("categories")?,
            listed_in: row.try_get("listed_in")?,
            purchase_limit: row.try_get("purchase_limit")?,
            reserved: 0,
            available: 0,
            version: row.try_get("version")?,
            updated_at: row.try_get("updated_at")?,
            history: row.try_get("history")?,
            reservations: Reservations::new(entries),
            read_at_ms: row.try_get("read_at_ms")?,
            cannot_enter_pages: false,
        };
        Ok(product.at(product.read_at_ms))
    }
}

/// What Postgres holds for a product id: a live product, or the version of its deletion.
// A deletion is rare and short-lived; boxing the live product would add an allocation to
// every write's answer for it.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductState {
    Live(Product),
    Deleted { id: i64, version: i64, history: i64 },
}

impl ProductState {
    /// Whether a publish of this state must renew the generations of the product's pages.
    pub(crate) fn may_enter_pages(&self) -> bool {
        matches!(self, Self::Live(product) if !product.cannot_enter_pages)
    }

    pub fn id(&self) -> i64 {
        match self {
            Self::Live(p) => p.id,
            Self::Deleted { id, .. } => *id,
        }
    }

    pub fn version(&self) -> i64 {
        match self {
            Self::Live(p) => p.version,
            Self::Deleted { version, .. } => *version,
        }
    }

    /// The database history the state was read from.
    pub fn history(&self) -> i64 {
        match self {
            Self::Live(p) => p.history,
            Self::Deleted { history, .. } => *history,
        }
    }

    /// What a cached copy of this state is ordered by: history first, then version.
    pub fn stamp(&self) -> i64 {
        shopnow_contract::stamps::stamp(self.history(), self.version())
    }
}

/// `POST /v1/products`. Unknown fields are refused.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// Unique among live products: letters, digits, `-`, `_` and `.`, at most 64.
    #[schema(
        example = "TSHIRT-RED-M",
        pattern = r"^[A-Za-z0-9._-]{1,64}$",
        min_length = 1,
        max_length = 64
    )]
    pub sku: String,
    /// 1 to 200 characters, at least one of them visible (not a space, a combining mark or an
    /// invisible character); no control characters or line separators, no more than 4
    /// combining marks on one character, no bidirectional overrides, embeddings or isolates.
    #[schema(example = "Red T-shirt, M", min_length = 1, max_length = 200)]
    pub name: String,
    /// At most 5000 characters; no NUL, no bidirectional overrides, embeddings or isolates.
    #[serde(default)]
    #[schema(max_length = 5000)]
    pub description: String,
    #[schema(example = 1999, minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub price_cents: i64,
    /// ISO 4217 code; `USD` when omitted.
    #[serde(default = "default_currency")]
    #[schema(example = "USD", pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// 0 when omitted.
    #[serde(default)]
    #[schema(example = 100, minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub stock: i64,
    /// The most units one hold or one order may take; the shop's default when omitted.
    #[serde(default)]
    #[schema(example = 2, minimum = 1, maximum = 10_000)]
    pub purchase_limit: Option<i64>,
    /// Slugs of the categories to list the product in (at most 16); none when omitted.
    #[serde(default)]
    #[schema(example = json!(["t-shirts"]))]
    pub categories: Vec<String>,
}

fn default_currency() -> String {
    "USD".to_string()
}

/// `PATCH /v1/products/{id}`: any of the fields; at least one. Unknown fields are refused.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct ProductPatch {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub price_cents: Option<i64>,
    /// A number sets the product's purchase limit, `null` gives it the shop's default back;
    /// omitted, the limit stays as it is.
    #[serde(default, deserialize_with = "super::sent")]
    #[schema(value_type = Option<i64>, nullable, minimum = 1, maximum = 10_000)]
    pub purchase_limit: Option<Option<i64>>,
    /// Replaces the product's categories (slugs; `[]` takes it out of every one).
    pub categories: Option<Vec<String>>,
}

/// `PUT /v1/products/{id}/stock`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StockLevel {
    #[schema(example = 25, minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub stock: i64,
}

/// `POST /v1/products/{id}/stock/adjustments`: a delivery (positive) or a correction (negative).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StockAdjustment {
    /// Not zero; the stock after it stays between 0 and 1,000,000,000,000.
    #[schema(example = -3, minimum = -1_000_000_000_000_i64, maximum = 1_000_000_000_000_i64)]
    pub delta: i64,
}

impl NewProduct {
    pub fn validate(&self) -> Result<(), Error> {
        validate_sku(&self.sku)?;
        validate_name(&self.name)?;
        validate_description(&self.description)?;
        validate_price(self.price_cents)?;
        validate_currency(&self.currency)?;
        validate_stock(self.stock)?;
        self.purchase_limit
            .map(validate_purchase_limit)
            .transpose()?;
        validate_product_categories(&self.categories)
    }
}

impl ProductPatch {
    pub fn validate(&self) -> Result<(), Error> {
        if self.name.is_none()
            && self.description.is_none()
            && self.price_cents.is_none()
            && self.purchase_limit.is_none()
            && self.categories.is_none()
        {
            return Err(Error::invalid(
                "send at least one of name, description, price_cents, purchase_limit, categories",
            ));
        }
        self.categories
            .as_deref()
            .map(validate_product_categories)
            .transpose()?;
        self.name.as_deref().map(validate_name).transpose()?;
        self.description
            .as_deref()
            .map(validate_description)
            .transpose()?;
        self.price_cents.map(validate_price).transpose()?;
        self.purchase_limit
            .flatten()
            .map(validate_purchase_limit)
            .transpose()?;
        Ok(())
    }
}

fn validate_purchase_limit(limit: i64) -> Result<(), Error> {
    if (1..=MAX_QUANTITY).contains(&limit) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "purchase_limit must be 1 to {MAX_QUANTITY} (or null for the shop's default)"
        )))
    }
}

impl StockLevel {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        validate_stock(self.stock)
    }
}

impl StockAdjustment {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        // unsigned_abs: i64::MIN has no positive counterpart, and abs() would overflow.
        if self.delta == 0 || self.delta.unsigned_abs() > MAX_STOCK.unsigned_abs() {
            return Err(Error::invalid(format!(
                "delta must be non-zero and between -{MAX_STOCK} and {MAX_STOCK}"
            )));
        }
        Ok(())
    }
}

fn validate_sku(sku: &str) -> Result<(), Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if sku.is_empty() || sku.len() > 64 || !sku.chars().all(allowed) {
        return Err(Error::invalid(
            "sku must be 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(())
}

pub(super) fn validate_name(name: &str) -> Result<(), Error> {
    let length = name.chars().count();
    if name.trim().is_empty() || length > 200 {
        return Err(Error::invalid("name must be 1 to 200 characters"));
    }
    if name
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return Err(Error::invalid(
            "name must not contain control characters or line breaks",
        ));
    }
    if !name
        .chars()
        .any(|c| !c.is_whitespace() && !is_invisible(c) && !is_combining_mark(c))
    {
        return Err(Error::invalid(
            "name must contain a visible character, not only spaces, marks or invisible ones",
        ));
    }
    let mut marks_in_a_row = 0;
    for c in name.chars() {
        marks_in_a_row = if is_combining_mark(c) {
            marks_in_a_row + 1
        } else {
            0
        };
        if marks_in_a_row > MOST_MARKS_IN_A_ROW {
            return Err(Error::invalid(format!(
                "name must not stack more than {MOST_MARKS_IN_A_ROW} combining marks on one \
                 character"
            )));
        }
    }
    reject_direction_overrides("name", name)
}

/// Combining marks one character may carry in a name: written languages stack two or three
/// (Vietnamese, decomposed); piles of them ("Zalgo" text) spill over the lines around.
const MOST_MARKS_IN_A_ROW: usize = 4;

/// The blocks of combining marks that attach to any script (diacritics, their supplements,
/// marks for symbols, half marks), not a script's own vowel signs.
fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

/// Characters that take no room and show nothing: zero-width spaces and joiners, the word
/// joiner and invisible operators, the byte-order mark, the soft hyphen, variation selectors,
/// the blank Braille pattern and the Hangul fillers.
/// Allowed inside a name (a joiner builds an emoji), but never as all of it.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
        | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{2800}' | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{E0000}'..='\u{E0FFF}')
}

/// The explicit embeddings, overrides and isolates (U+202A to U+202E, U+2066 to U+2069) make
/// text render in another order than it is stored ("Trojan Source"): a name shown to shoppers
/// and to staff must read as it is.
fn reject_direction_overrides(field: &str, text: &str) -> Result<(), Error> {
    if text
        .chars()
        .any(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
    {
        return Err(Error::invalid(format!(
            "{field} must not contain bidirectional overrides, embeddings or isolates \
             (U+202A to U+202E, U+2066 to U+2069): they make text show in another order than \
             it is stored"
        )));
    }
    Ok(())
}

fn validate_description(description: &str) -> Result<(), Error> {
    if description.chars().count() > 5000 {
        return Err(Error::invalid(
            "description must be at most 5000 characters",
        ));
    }
    if description.contains('\0') {
        return Err(Error::invalid("description must not contain NUL"));
    }
    reject_direction_overrides("description", description)
}

fn validate_price(price_cents: i64) -> Result<(), Error> {
    if !(0..=MAX_PRICE_CENTS).contains(&price_cents) {
        return Err(Error::invalid(format!(
            "price_cents must be between 0 and {MAX_PRICE_CENTS}"
        )));
    }
    Ok(())
}

/// The currencies of ISO 4217 a price can be in, sorted: every country's, including those
/// being replaced in 2024 and 2025 (ANG and XCG, SLL and SLE, ZWL and ZWG); no fund codes, no
/// precious metals, no test codes (XTS, XXX).
const CURRENCIES: [&str; 160] = [
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP",
    "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF",
    "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD",
    "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP",
    "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR",
    "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB",
    "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD",
    "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL", "SOS", "SRD", "SSP", "STN", "SVC", "SYP",
    "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD",
    "UYU", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER",
    "ZAR", "ZMW", "ZWG", "ZWL",
];

fn validate_currency(currency: &str) -> Result<(), Error> {
    if CURRENCIES.binary_search(&currency).is_err() {
        return Err(Error::invalid(
            "currency must be the ISO 4217 code of a currency, such as USD, EUR or JPY",
        ));
    }
    Ok(())
}

fn validate_stock(stock: i64) -> Result<(), Error> {
    if !(0..=MAX_STOCK).contains(&stock) {
        return Err(Error::invalid(format!(
            "stock must be between 0 and {MAX_STOCK}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_product() -> NewProduct {
        NewProduct {
            sku: "SKU-1".into(),
            name: "Mug".into(),
            description: String::new(),
            price_cents: 500,
            currency: "EUR".into(),
            stock: 3,
            purchase_limit: None,
            categories: Vec::new(),
        }
    }

    #[test]
    fn a_valid_product_passes() {
        assert!(new_product().validate().is_ok());
    }

    #[test]
    fn invalid_fields_are_rejected() {
        let cases: &[fn(&mut NewProduct)] = &[
            |p| p.sku = String::new(),
            |p| p.sku = "has space".into(),
            |p| p.sku = "x".repeat(65),
            |p| p.name = "  ".into(),
            |p| p.name = "bell\u{7}".into(),
            |p| p.name = "\u{200B}\u{200B}".into(),
            |p| p.name = " \u{FEFF}\u{2060} ".into(),
            |p| p.name = "Mug \u{202E}gnp.exe".into(),
            |p| p.name = "\u{2067}Mug".into(),
            |p| p.description = "cheap \u{202E}!".into(),
            |p| p.price_cents = -1,
            |p| p.price_cents = MAX_PRICE_CENTS + 1,
            |p| p.currency = "usd".into(),
            |p| p.currency = "EURO".into(),
            |p| p.currency = "ZZZ".into(),
            |p| p.currency = "XTS".into(),
            |p| p.stock = -1,
            |p| p.description = "a\0b".into(),
            // What a probe got past before: a blank Braille pattern, a pile of marks, a line
            // separator, marks alone.
            |p| p.name = "\u{2800}\u{2800}".into(),
            |p| p.name = format!("a{}", "\u{0301}".repeat(199)),
            |p| p.name = "Mug\u{2028}Cup".into(),
            |p| p.name = "\u{0301}\u{0302}".into(),
            |p| p.purchase_limit = Some(0),
            |p| p.purchase_limit = Some(10_001),
        ];
        for (i, change) in cases.iter().enumerate() {
            let mut p = new_product();
            change(&mut p);
            assert!(p.validate().is_err(), "case {i} should be rejected");
        }
    }

    #[test]
    fn currencies_are_the_iso_4217_list() {
        assert!(
            CURRENCIES.windows(2).all(|pair| pair[0] < pair[1]),
            "sorted"
        );
        for code in ["USD", "EUR", "JPY", "GBP", "CHF", "AED", "ZAR"] {
            let mut p = new_product();
            p.currency = code.into();
            assert!(p.validate().is_ok(), "{code}");
        }
    }

    #[test]
    fn names_with_joiners_and_right_to_left_text_pass() {
        for name in [
            "\u{1F469}\u{200D}\u{1F373} Chef",
            "\u{5E1}\u{5E4}\u{5E8}",
            "Caf\u{E9}",
            // Decomposed: e, circumflex, acute (Vietnamese ế).
            "Tie\u{0302}\u{0301}n",
        ] {
            let mut p = new_product();
            p.name = name.into();
            assert!(p.validate().is_ok(), "{name:?}");
        }
    }

    #[test]
    fn an_empty_patch_is_rejected() {
        assert!(ProductPatch::default().validate().is_err());
        let patch = ProductPatch {
            price_cents: Some(10),
            ..Default::default()
        };
        assert!(patch.validate().is_ok());
    }

    #[test]
    fn a_zero_or_huge_adjustment_is_rejected() {
        assert!(StockAdjustment { delta: 0 }.validate().is_err());
        assert!(StockAdjustment {
            delta: -MAX_STOCK - 1
        }
        .validate()
        .is_err());
        assert!(StockAdjustment { delta: -2 }.validate().is_ok());
        assert!(StockAdjustment { delta: i64::MIN }.validate().is_err());
        assert!(StockAdjustment { delta: i64::MAX }.validate().is_err());
    }
}
