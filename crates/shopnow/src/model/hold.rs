//! Holds: stock set aside for a while, and the reservations they leave on products.
//!
//! A product's reservations are its row's schedule of when held units lapse: one entry per
//! whole second in which holds of it expire, with their units together. What a reader sees as
//! `reserved` is the sum of the entries that have not expired *at the time of the read*: an
//! expiry changes the answer without any write. So whoever renders a product keeps the entries
//! with it, and judges them by the database's clock when it answers.
//!
//! A cached copy carries at most `LISTED` of them (`bounded`): the rest are summed into one
//! figure that holds until the first of them lapses, and from then on the copy is not served
//! (its next read fills it again from Postgres). So a copy's size does not grow with the holds
//! on its product, and a read judges at most `LISTED` entries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::order::{OrderItemRequest, OrderLines};
use crate::error::Error;

/// Shortest and longest hold a client may ask for, in seconds.
pub(crate) const MIN_HOLD_TTL_SECS: u64 = 1;
pub(crate) const MAX_HOLD_TTL_SECS: u64 = 3600;

/// One hold's units of one product, as the product's row lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub quantity: i64,
    /// Milliseconds since the Unix epoch, by the database's clock.
    pub expires_at: i64,
}

/// How many schedule entries a cached copy lists at most.
pub(crate) const LISTED: usize = 4;

/// The reservations of a product's row, lapsed or not, in expiry order: all of them as read
/// from Postgres, or a bounded part of them as a cached copy carries them (`bounded`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reservations {
    entries: Vec<Reservation>,
    /// What a part leaves out (boxed: a product is moved often, and rarely has a part).
    left_out: Option<Box<LeftOut>>,
}

/// The entries of a row a part of it does not list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct LeftOut {
    /// The row's entries before the listed ones, every one lapsed when the part was taken.
    skipped: usize,
    /// The row's entries after the listed ones, summed: their units, and the first of their
    /// expiries (from which the part cannot tell what is reserved).
    unlisted: Option<Reservation>,
}

impl Reservations {
    pub fn new(mut entries: Vec<Reservation>) -> Self {
        entries.sort_by_key(|entry| entry.expires_at);
        Self {
            entries,
            left_out: None,
        }
    }

    /// A part as a cached copy keeps it: `skipped` lapsed entries left out before `entries`,
    /// and `unlisted` summing those after.
    pub fn part(skipped: usize, entries: Vec<Reservation>, unlisted: Option<Reservation>) -> Self {
        let left_out = LeftOut { skipped, unlisted };
        Self {
            left_out: (left_out != LeftOut::default()).then(|| Box::new(left_out)),
            ..Self::new(entries)
        }
    }

    /// What a cached copy rendered at `at_ms` keeps of these: the entries lapsed by then left
    /// out (counted), at most `most` listed, the rest summed.
    pub fn bounded(&self, at_ms: i64, most: usize) -> Self {
        let lapsed = self
            .entries
            .partition_point(|entry| entry.expires_at <= at_ms);
        let live = &self.entries[lapsed..];
        let (listed, rest) = live.split_at(live.len().min(most));
        let unlisted = match (rest.first(), self.unlisted()) {
            (None, unlisted) => unlisted,
            (Some(first), unlisted) => Some(Reservation {
                expires_at: first.expires_at,
                quantity: rest.iter().map(|entry| entry.quantity).sum::<i64>()
                    + unlisted.map_or(0, |unlisted| unlisted.quantity),
            }),
        };
        Self::part(self.skipped() + lapsed, listed.to_vec(), unlisted)
    }

    pub fn entries(&self) -> &[Reservation] {
        &self.entries
    }

    pub fn skipped(&self) -> usize {
        self.left_out
            .as_ref()
            .map_or(0, |left_out| left_out.skipped)
    }

    pub fn unlisted(&self) -> Option<Reservation> {
        self.left_out
            .as_ref()
            .and_then(|left_out| left_out.unlisted)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.left_out.is_none()
    }

    /// Whether these tell what is reserved at `now_ms`: always, unless entries left unlisted
    /// have begun to lapse.
    pub fn tell_at(&self, now_ms: i64) -> bool {
        self.unlisted()
            .is_none_or(|unlisted| now_ms < unlisted.expires_at)
    }

    /// Units held at `now_ms`: the entries expiring after it (see `tell_at`).
    pub fn reserved_at(&self, now_ms: i64) -> i64 {
        self.entries
            .iter()
            .filter(|entry| entry.expires_at > now_ms)
            .map(|entry| entry.quantity)
            .sum::<i64>()
            + self.unlisted().map_or(0, |unlisted| unlisted.quantity)
    }

    /// How many of the row's entries have lapsed at `now_ms`. With the version, it names what
    /// a read shows (the ETag's suffix): entries only ever lapse, in expiry order.
    pub fn lapsed_at(&self, now_ms: i64) -> usize {
        self.skipped()
            + self
                .entries
                .partition_point(|entry| entry.expires_at <= now_ms)
    }

    /// The first expiry after `now_ms`: until then, what a read shows does not change.
    pub fn next_expiry_after(&self, now_ms: i64) -> Option<i64> {
        let listed = self
            .entries
            .partition_point(|entry| entry.expires_at <= now_ms);
        self.entries
            .get(listed)
            .map(|entry| entry.expires_at)
            .or(self.unlisted().map(|entry| entry.expires_at))
    }
}

/// `POST /v1/holds`. Unknown fields are refused.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HoldRequest {
    /// 1 to 100 items, each product once, all in one currency.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<OrderItemRequest>,
    /// How long the hold lasts: 1 to 3600 seconds; `SHOPNOW_HOLD_TTL_SECS` (600) when omitted.
    #[schema(example = 600, minimum = 1, maximum = 3600)]
    pub ttl_seconds: Option<u64>,
}

/// A hold request after validation.
#[derive(Debug, Clone)]
pub(crate) struct HoldLines {
    pub lines: OrderLines,
    pub ttl_seconds: u64,
}

impl HoldLines {
    pub(crate) fn from_request(
        request: &HoldRequest,
        default_ttl_seconds: u64,
    ) -> Result<Self, Error> {
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = request
            .items
            .iter()
            .find(|item| !seen.insert(item.product_id))
        {
            return Err(Error::invalid(format!(
                "product {} is named twice: name each product once, with its whole quantity",
                twice.product_id
            )));
        }
        let ttl_seconds = request.ttl_seconds.unwrap_or(default_ttl_seconds);
        if !(MIN_HOLD_TTL_SECS..=MAX_HOLD_TTL_SECS).contains(&ttl_seconds) {
            return Err(Error::invalid(format!(
                "ttl_seconds must be between {MIN_HOLD_TTL_SECS} and {MAX_HOLD_TTL_SECS}"
            )));
        }
        let lines = OrderLines::from_items(&request.items, "a hold")?;
        Ok(Self { lines, ttl_seconds })
    }

    /// Fingerprint stored with an Idempotency-Key: the items and the duration, apart from any
    /// order's (a key used for an order and for a hold names two requests).
    pub(crate) fn fingerprint(&self) -> Vec<u8> {
        let mut fingerprint = b"hold\n".to_vec();
        fingerprint.extend(self.ttl_seconds.to_be_bytes());
        fingerprint.extend(self.lines.fingerprint());
        fingerprint
    }
}

/// Where a hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum HoldStatus {
    /// Its units are set aside until `expires_at`.
    Held,
    /// `expires_at` passed: its units count as available again.
    Expired,
    /// Its holder released it before it expired.
    Released,
    /// It became the order `order_id`.
    Converted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub(crate) struct HoldItem {
    #[schema(example = 42)]
    pub product_id: i64,
    #[schema(example = 2)]
    pub quantity: i64,
}

/// A hold as its holder reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub(crate) struct Hold {
    #[schema(example = "0b6f7c1e-2f43-4d7a-9a0e-5c1d2b3a4f5e")]
    pub id: String,
    pub status: HoldStatus,
    pub items: Vec<HoldItem>,
    /// When the units stop being held, unless released or converted before.
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// The order it became, once converted.
    pub order_id: Option<i64>,
}

/// What `POST /v1/holds` answers: the hold, and the secret that reads, releases and converts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub(crate) struct HoldReceipt {
    #[serde(flatten)]
    pub hold: Hold,
    /// Send it as `Authorization: Bearer <access_token>` to read, release or convert the hold.
    #[schema(example = "9c2e5a1f7d3b...")]
    pub access_token: String,
}

/// A hold as stored, with the token that reads it.
#[derive(Debug, Clone)]
pub(crate) struct StoredHold {
    pub hold: Hold,
    pub access_token: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(quantity: i64, expires_at: i64) -> Reservation {
        Reservation {
            quantity,
            expires_at,
        }
    }

    #[test]
    fn entries_stop_counting_at_their_expiry() {
        let held = Reservations::new(vec![entry(2, 300), entry(1, 100), entry(5, 200)]);
        assert_eq!(held.reserved_at(99), 8);
        assert_eq!(held.reserved_at(100), 7, "an entry lapses at its expiry");
        assert_eq!(held.reserved_at(250), 2);
        assert_eq!(held.reserved_at(300), 0);
        assert_eq!(held.lapsed_at(0), 0);
        assert_eq!(held.lapsed_at(200), 2);
        assert_eq!(held.next_expiry_after(0), Some(100));
        assert_eq!(held.next_expiry_after(100), Some(200));
        assert_eq!(held.next_expiry_after(300), None);
    }

    fn request(items: &[(i64, i64)], ttl_seconds: Option<u64>) -> HoldRequest {
        HoldRequest {
            items: items
                .iter()
                .map(|&(product_id, quantity)| OrderItemRequest {
                    product_id,
                    quantity,
                })
                .collect(),
            ttl_seconds,
        }
    }

    #[test]
    fn a_bounded_part_tells_the_same_until_its_unlisted_entries_lapse() {
        let all = Reservations::new((1..=10).map(|i| entry(i, i * 100)).collect());
        let part = all.bounded(250, 3);
        assert_eq!(part.skipped(), 2);
        assert_eq!(
            part.entries(),
            &[entry(3, 300), entry(4, 400), entry(5, 500)]
        );
        assert_eq!(part.unlisted(), Some(entry((6..=10).sum(), 600)));
        for now in [250, 299, 300, 450, 599] {
            assert!(part.tell_at(now));
            assert_eq!(part.reserved_at(now), all.reserved_at(now), "at {now}");
            assert_eq!(part.lapsed_at(now), all.lapsed_at(now), "at {now}");
            assert_eq!(part.next_expiry_after(now), all.next_expiry_after(now));
        }
        assert!(!part.tell_at(600), "an unlisted entry lapsed");
        // A part of a part is the same as a part of the whole.
        assert_eq!(part.bounded(350, 1), all.bounded(350, 1));
        assert_eq!(all.bounded(0, 20), all, "nothing to leave out");
    }

    #[test]
    fn bad_holds_are_refused() {
        for bad in [
            request(&[], None),
            request(&[(1, 0)], None),
            request(&[(1, -2)], None),
            request(&[(1, 1), (1, 1)], None),
            request(&[(1, 1)], Some(0)),
            request(&[(1, 1)], Some(3601)),
            request(&(1..=101).map(|id| (id, 1)).collect::<Vec<_>>(), None),
        ] {
            assert!(HoldLines::from_request(&bad, 600).is_err(), "{bad:?}");
        }
        let good = HoldLines::from_request(&request(&[(2, 1), (1, 3)], None), 600).unwrap();
        assert_eq!(good.ttl_seconds, 600);
        assert_eq!(good.lines.product_ids(), vec![1, 2]);
    }

    #[test]
    fn a_hold_and_an_order_of_the_same_items_have_different_fingerprints() {
        let hold = HoldLines::from_request(&request(&[(1, 1)], Some(60)), 600).unwrap();
        assert_ne!(hold.fingerprint(), hold.lines.fingerprint());
        let longer = HoldLines::from_request(&request(&[(1, 1)], Some(61)), 600).unwrap();
        assert_ne!(hold.fingerprint(), longer.fingerprint());
    }
}

/// A live hold of one product, as an operator lists them (`GET /v1/products/{id}/holds`).
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct ProductHold {
    /// The hold's id.
    #[schema(example = "0b6f7c1e-2f43-4d7a-9a0e-5c1d2b3a4f5e")]
    pub id: String,
    /// Units of this product it sets aside.
    pub quantity: i64,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}
