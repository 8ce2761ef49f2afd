//! The HTTP API, one job per module:
//!
//! - `state`: what every handler may need (`AppState`);
//! - `ops`, `products`, `holds`, `orders`: the routes of one resource each;
//! - `idempotency`: what makes a retry of an order or a hold safe;
//! - `auth`, `extract`: the admin, order and hold tokens, and extractors that answer bad input with
//!   the JSON error; `responses`: the responses many operations document;
//! - `error`: the one error shape; `edge`: request ids, limits, access log and metrics, in one
//!   service;
//! - `openapi`: the document's description; `router`: where routes, document and edge
//!   are joined (nothing imports it back);
//! - `server`: the HTTP/1.1 loop and the limits of the edge; `config`: their settings.

mod auth;
mod categories;
mod config;
mod edge;
mod error;
mod extract;
mod holds;
mod idempotency;
mod openapi;
mod ops;
mod orders;
mod products;
mod rate_limits;
mod responses;
mod router;
mod server;
mod state;

pub use self::{config::HttpConfig, edge::AccessLog, router::openapi_document};
pub(crate) use self::{
    router::{api, Api},
    server::serve,
    state::AppState,
};
