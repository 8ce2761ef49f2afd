//! The physical limit of a cached product read on this stack: an axum handler that answers each
//! `GET /v1/products/{id}` with the bytes of one Redis GET of the product's versioned copy, and
//! nothing else (no middleware, no parsing, no metrics, no logs). `bench/run` measures shopnow's
//! hot read as a ratio to it, in the same run.
//!
//! usage: bare-handler REDIS_URL KEY_PREFIX
//! Prints `http://127.0.0.1:<port>` once it listens, and serves until it is killed.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::get,
    Router,
};
use redis::{aio::ConnectionManager, AsyncCommands};
use shopnow_contract::ProductKeys;

#[derive(Clone)]
struct Bare {
    redis: ConnectionManager,
    prefix: Arc<str>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(redis_url), Some(prefix)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: bare-handler REDIS_URL KEY_PREFIX");
    };
    let redis = ConnectionManager::new(redis::Client::open(redis_url)?).await?;
    let app = Router::new()
        .route("/v1/products/{id}", get(read))
        .with_state(Bare {
            redis,
            prefix: prefix.into(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn read(State(bare): State<Bare>, Path(id): Path<i64>) -> Result<Vec<u8>, StatusCode> {
    let mut redis = bare.redis;
    let copy: Option<Vec<u8>> = redis
        .get(ProductKeys::new(&bare.prefix, id).current())
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    copy.ok_or(StatusCode::NOT_FOUND)
}
