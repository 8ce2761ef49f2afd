//! What a product read answers, and a product's copy as the cache holds it: the types every
//! strategy shares with the layers above.

use bytes::Bytes;

use crate::model::{Position, Product, ProductState, Reservations};

/// Where a read's answer came from; sent as `X-Cache`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    /// A hit served from the instance's memory (the near cache).
    Near,
    Miss,
    /// The cache was not used, or not reachable.
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Near => "near",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

/// A product read as the HTTP layer serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRead {
    /// `None`: no such product, or deleted.
    pub found: Option<VersionedBody>,
    pub status: CacheStatus,
}

/// A list page as the HTTP layer serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageRead {
    /// Each product as a read of it would answer, in the listing's order.
    pub items: Vec<VersionedBody>,
    /// Where the next page starts: the last item's place, when more follow.
    pub next: Option<Position>,
    pub status: CacheStatus,
}

impl PageRead {
    /// A page read from Postgres (`rows`, in order), served as it is.
    pub(crate) fn of_rows(
        rows: &[Product],
        more: bool,
        listing: &crate::model::Listing,
        status: CacheStatus,
    ) -> Self {
        Self {
            items: rows.iter().map(VersionedBody::of).collect(),
            next: rows
                .last()
                .filter(|_| more)
                .map(|last| listing.position_of(last)),
            status,
        }
    }
}

/// The JSON of one version of a product, ready to send as it is, the database history the
/// version belongs to, and how many of its holds had lapsed (both for the ETag; see
/// `shopnow_contract::stamps`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedBody {
    pub history: i64,
    pub version: i64,
    pub lapsed: usize,
    pub body: Bytes,
}

impl VersionedBody {
    pub fn of(product: &Product) -> Self {
        Self {
            history: product.history,
            version: product.version,
            lapsed: product.lapsed(),
            body: Bytes::from(serde_json::to_vec(product).expect("a product serialises")),
        }
    }

    /// `"<version>"`, or `"<history>.<version>"` after a failover, with `-<lapsed>` once holds
    /// of the version lapsed: one ETag, one content.
    pub fn etag(&self) -> String {
        shopnow_contract::stamps::etag_with_lapsed(self.history, self.version, self.lapsed)
    }

    /// The body of a product state: a deleted product has none.
    pub fn of_state(state: &ProductState) -> Option<Self> {
        match state {
            ProductState::Live(product) => Some(Self::of(product)),
            ProductState::Deleted { .. } => None,
        }
    }
}

/// A product's copy in the cache as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedCopy {
    /// The database history the copy was read from, and its version in it.
    pub history: i64,
    pub version: i64,
    /// The product JSON, or `None` for a deletion's tombstone.
    pub payload: Option<Bytes>,
    /// The holds the row listed, and the database's time the JSON's `reserved` was computed
    /// at: what the copy is judged by again when it is served later (`body_at`).
    pub reservations: Reservations,
    pub rendered_at_ms: i64,
}

impl CachedCopy {
    /// What copies are ordered by: history first, then version.
    pub fn stamp(&self) -> i64 {
        shopnow_contract::stamps::stamp(self.history, self.version)
    }

    /// The body a read at `now_ms` (the database's clock) answers: the stored JSON while no hold
    /// it counted has lapsed since it was rendered (no work beyond one comparison), else the
    /// JSON rendered again with the lapsed holds left out.
    pub fn body_at(&self, now_ms: i64) -> Option<VersionedBody> {
        let payload = self.payload.as_ref()?;
        let lapsed = self.reservations.lapsed_at(now_ms);
        let body = if lapsed == self.reservations.lapsed_at(self.rendered_at_ms) {
            payload.clone()
        } else {
            match serde_json::from_slice::<Product>(payload) {
                Ok(mut product) => {
                    product.reservations = self.reservations.clone();
                    Bytes::from(
                        serde_json::to_vec(&product.at(now_ms)).expect("a product serialises"),
                    )
                }
                // Stored by this code, so never; if it were, the count can wait, not the read.
                Err(error) => {
                    tracing::warn!(%error, "a cached copy's JSON is not a product");
                    payload.clone()
                }
            }
        };
        Some(VersionedBody {
            history: self.history,
            version: self.version,
            lapsed,
            body,
        })
    }
}
