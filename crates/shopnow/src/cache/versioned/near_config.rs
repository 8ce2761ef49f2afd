//! The near cache's settings, apart from the near cache itself: the backend every strategy
//! shares carries them, and must not import the cache that uses them.

use std::time::Duration;

/// The near cache's settings (`SHOPNOW_NEAR_CACHE*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NearCacheConfig {
    pub enabled: bool,
    /// At most this many products in memory.
    pub max_entries: usize,
    /// At most this many bytes of copies in memory (JSON plus bookkeeping).
    pub max_bytes: usize,
    /// How long a renewal's lease runs: the longest a paused or cut-off instance delays writes.
    pub lease: Duration,
}

impl Default for NearCacheConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_entries: 10_000,
            max_bytes: 64 << 20,
            lease: Duration::from_millis(500),
        }
    }
}
