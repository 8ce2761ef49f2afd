//! The cache strategies by the names `SHOPNOW_CACHE_STRATEGY` accepts.

/// Every read goes to Postgres.
pub const NONE: &str = "none";
/// Read-through with a TTL; writes leave the cache alone (the article's bug).
pub const TTL: &str = "ttl";
/// `ttl` plus a DEL after each write (loses the slow-reader race).
pub const DELETE: &str = "delete";
/// Never older than the last acknowledged write (the default).
pub const VERSIONED: &str = "versioned";

/// Every name `SHOPNOW_CACHE_STRATEGY` accepts.
pub const ALL: [&str; 4] = [NONE, TTL, DELETE, VERSIONED];

/// The strategies that promise never to serve a read older than the last acknowledged write:
/// the checker fails a run in which one of them shows a stale read outside the repair windows.
pub const FRESH: [&str; 2] = [VERSIONED, NONE];
