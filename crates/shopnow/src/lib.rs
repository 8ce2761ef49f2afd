//! shopnow: a catalog, inventory and orders API whose cached product pages never show stock
//! older than the last acknowledged write. The design, its rules and its bounds are in
//! `docs/design.md`; how to run and use it in `README.md`.
//!
//! # Layout
//! Arrows only go down this list:
//! - `cli` parses the command line; `app` builds and runs one instance from a `config`.
//! - `http`: the routes (one module per resource), their state, errors and edge (ids, limits, metrics), and the
//!   server loop with the limits of the HTTP edge.
//! - `relay`, `sampler` and `janitor`: the background tasks that work through the catalog
//!   (outbox relay, consistency sampler, expiry of old rows).
//! - `rate_limit`: the writes one client address may send (counted in Redis by the cache, per
//!   instance while Redis is away; `http::rate_limits` applies it at the edge).
//! - `catalog`: every read and write of products and orders: Postgres first, then the cache;
//!   `write_gate` bounds the writes of one product in flight; `group_commit` queues the writes
//!   of one product that commit together; `sweeper` removes the outbox rows
//!   of the changes this instance published.
//! - `cache`: the cache strategies, one module each, behind one trait; `versioned` is the one
//!   that is never stale, its Lua scripts beside it, and the watch of the database's history;
//!   the Redis connection (cluster, TLS, replicas confirmed by `WAIT`) and the watch that logs
//!   when Redis stops answering.
//! - `db`: every SQL statement, one module per table group; `model`: products and orders.
//! - `error`: the domain's errors; `hooks`, `faults`: test and checker instruments;
//!   `lifecycle`, `observability`: readiness and shutdown, logs and metrics.
//!
//! What the server and the tools that drive it from outside must agree on (the Redis key
//! layout, copy stamps and ETags, strategy and fault names) is in the `shopnow-contract` crate.

mod app;
mod cache;
mod catalog;
mod cli;
mod config;
mod db;
mod error;
mod faults;
mod group_commit;
mod handoff;
mod hooks;
mod http;
mod janitor;
mod lapsed_holds;
mod lifecycle;
mod model;
mod observability;
mod rate_limit;
mod relay;
mod sampler;
mod sweeper;
mod write_gate;

pub use app::Application;
// Besides what tests, the binary and the checker use, the types of `Config`'s public fields,
// so that every part of the public API can be named.
pub use cache::{
    CacheConfig, CacheStats, CacheStrategy, CachedCopy, NearCacheConfig, ProductKeys, RedisConfig,
    RedisTlsFiles, CONVERGENCE_BOUND as HISTORY_CONVERGENCE_BOUND,
};
pub use catalog::Catalog;
pub use cli::{healthcheck, run, Cli};
pub use config::{Config, ConfigError};
pub use db::DatabaseConfig;
pub use faults::WriteFaults;
pub use hooks::{Hook, Hooks, PublishSite};
pub use http::{openapi_document, AccessLog, HttpConfig};
pub use model::{Order, OrderItem, OrderReceipt, OrderStatus, Product, Reservation, Reservations};
pub use observability::{init_logging, LogFormat};
pub use rate_limit::RateLimitConfig;
pub use relay::{GRACE as RELAY_GRACE, REPAIR_BOUND};
