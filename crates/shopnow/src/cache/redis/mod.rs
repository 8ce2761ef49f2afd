//! The connection to Redis, one concern per file, arrows going down:
//!
//! - `client`: what the strategies call (reads, fills, publishes), every call bounded in time;
//! - `replication`: publishes confirmed by replicas (`WAIT`), and the replicas seen;
//! - `connection`: one connection, single node or cluster, made lazily and again after a
//!   failover;
//! - `config`: where Redis is, and the TLS files; `error`: what can go wrong.

mod client;
mod config;
mod connection;
mod error;
mod replication;

pub use self::config::{RedisConfig, RedisTlsFiles};
pub(crate) use self::{client::RedisClient, error::CacheError};
