//! What `shopnow` and the programs that know it only from outside (the `stalecheck` checker,
//! the benchmark's bare handler) must agree on, in one place both sides compile against, so
//! that a change on one side fails the build or a test of the other instead of silently
//! breaking it:
//!
//! - `keys`: the Redis key layout;
//! - `stamps`: the (history, version) stamp a `versioned` copy carries, and its ETag;
//! - `strategies`: the names `SHOPNOW_CACHE_STRATEGY` accepts;
//! - `faults`: the names `SHOPNOW_FAULTS` accepts, and how long `delay-publish` stalls.
//!
//! Nothing here depends on anything: the checker must never link the server.

pub mod faults;
pub mod keys;
pub mod stamps;
pub mod strategies;

pub use keys::ProductKeys;
