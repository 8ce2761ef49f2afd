//! shopnow's test infrastructure, written once and shared by the service's tests, the stale-read
//! checker, and (through the `testkit` binary) the benchmark and rehearsal scripts.
//!
//! # Layout
//! - [`free_port`]: a loopback port nobody listens on.
//! - [`process`]: start a process and wait for the log line that says it is ready.
//! - [`TestDatabase`]: a Postgres database of one test or run, dropped at the end.
//! - [`RedisServer`]: a `redis-server` of its own on a free port: stop, restart, pause, flush it
//!   without disturbing anybody; [`RedisCluster`] joins three of them into a cluster;
//!   [`ReplicatedRedis`] is a primary with a replica behind a moving endpoint, for failovers.
//!   Each can speak TLS only, with [`TestCertificates`] that `openssl` makes for the test.
//! - [`ShopnowProcess`]: the `shopnow` binary started with an environment, its address read
//!   from its log and its log kept.
//! - [`ReplicatedPostgres`]: a Postgres primary of its own with an asynchronous standby behind a
//!   moving endpoint, for failovers that lose commits.
//! - [`TcpProxy`]: a proxy the test controls, to make a dependency unreachable, hold a
//!   replication link, or move an endpoint to another node.

mod certificates;
mod cluster;
mod ports;
mod postgres;
pub mod process;
mod proxy;
mod redis;
mod replicated;
mod replicated_postgres;
mod shopnow;

pub use certificates::TestCertificates;
pub use cluster::RedisCluster;
pub use ports::free_port;
pub use postgres::{postgres_server, TestDatabase};
pub use proxy::{Mode as ProxyMode, TcpProxy};
pub use redis::{command_calls, RedisServer};
pub use replicated::ReplicatedRedis;
pub use replicated_postgres::ReplicatedPostgres;
pub use shopnow::ShopnowProcess;
