//! Integration tests: the real app on a free port, a real PostgreSQL (and, for the cache, a real
//! Redis), and a real HTTP client. Each test has a database of its own.

mod cache;
mod categories;
mod cluster;
mod contention;
mod database;
mod edge;
mod errors;
mod failover;
mod group_commit;
mod handoff;
mod helpers;
mod holds;
mod key_loss;
mod limits;
mod near_cache;
mod openapi;
mod ops;
mod orders;
mod outbox;
mod outside;
mod pg_failover;
mod products;
mod tls;
