//! The physical limits of a cached product read on this stack, for `bench/run`, which measures
//! shopnow's reads as ratios to them in the same run:
//!
//! - `redis` mode: an axum handler that answers each `GET /v1/products/{id}` with the bytes of
//!   one Redis GET of the product's versioned copy, and nothing else (no middleware, no parsing,
//!   no metrics, no logs): the limit of a read served by Redis;
//! - `memory` mode: the same handler answering from a map in its own memory (filled by one Redis
//!   GET per product, the first time it is asked for): the limit of a read served with no round
//!   trip, which is what shopnow's near cache does.
//!
//! usage: bare-handler REDIS_URL KEY_PREFIX [redis|memory]
//! Prints `http://127.0.0.1:<port>` once it listens, and serves until it is killed.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use axum::{
    body::Bytes,
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
    /// `memory` mode: the copies read so far.
    memory: Option<Arc<RwLock<HashMap<i64, Bytes>>>>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(redis_url), Some(prefix)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: bare-handler REDIS_URL KEY_PREFIX [redis|memory]");
    };
    let memory = match args.next().as_deref() {
        None | Some("redis") => None,
        Some("memory") => Some(Arc::default()),
        Some(other) => anyhow::bail!("unknown mode {other}: expected redis or memory"),
    };
    let redis = ConnectionManager::new(redis::Client::open(redis_url)?).await?;
    let app = Router::new()
        .route("/v1/products/{id}", get(read))
        .with_state(Bare {
            redis,
            prefix: prefix.into(),
            memory,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn read(State(bare): State<Bare>, Path(id): Path<i64>) -> Result<Bytes, StatusCode> {
    let Some(memory) = &bare.memory else {
        return redis_get(bare.redis, &bare.prefix, id).await;
    };
    let known = memory
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .cloned();
    if let Some(copy) = known {
        return Ok(copy);
    }
    let copy = redis_get(bare.redis.clone(), &bare.prefix, id).await?;
    memory
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, copy.clone());
    Ok(copy)
}

async fn redis_get(
    mut redis: ConnectionManager,
    prefix: &str,
    id: i64,
) -> Result<Bytes, StatusCode> {
    let copy: Option<Vec<u8>> = redis
        .get(ProductKeys::new(prefix, id).current())
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    copy.map(Bytes::from).ok_or(StatusCode::NOT_FOUND)
}
