//! shopnow: a catalog, inventory and orders API whose cached product pages never show stock
//! older than the last acknowledged write. See `DESIGN.md` in the shared folder and README.md.

pub mod app;
pub mod auth;
pub mod cache;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod faults;
pub mod lifecycle;
pub mod observability;
pub mod order;
pub mod product;
pub mod relay;
pub mod routes;
pub mod sampler;
pub mod stalecheck;
