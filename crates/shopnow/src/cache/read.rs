//! What a product read answers, and a product's copy as the cache holds it: the types every
//! strategy shares with the layers above.

use bytes::Bytes;

use crate::model::{Product, ProductState};

/// Where a read's answer came from; sent as `X-Cache`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    /// The cache was not used, or not reachable.
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
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

/// The JSON of one version of a product, ready to send as it is, and the database history the
/// version belongs to (for the ETag; see `shopnow_contract::stamps`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedBody {
    pub history: i64,
    pub version: i64,
    pub body: Bytes,
}

impl VersionedBody {
    pub fn of(product: &Product) -> Self {
        Self {
            history: product.history,
            version: product.version,
            body: Bytes::from(serde_json::to_vec(product).expect("a product serialises")),
        }
    }

    /// `"<version>"`, or `"<history>.<version>"` after a failover: one ETag, one content.
    pub fn etag(&self) -> String {
        shopnow_contract::stamps::etag(self.history, self.version)
    }

    /// The body of a product state: a deleted product has none.
    pub fn of_state(state: &ProductState) -> Option<Self> {
        match state {
            ProductState::Live(product) => Some(Self::of(product)),
            ProductState::Deleted { .. } => None,
        }
    }
}

/// A product's copy in the cache as it is, read without side effects (for the sampler).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedCopy {
    /// The database history the copy was read from, and its version in it.
    pub history: i64,
    pub version: i64,
    /// The product JSON, or `None` for a deletion's tombstone.
    pub payload: Option<Bytes>,
}

impl CachedCopy {
    /// What copies are ordered by: history first, then version.
    pub fn stamp(&self) -> i64 {
        shopnow_contract::stamps::stamp(self.history, self.version)
    }
}
