//! `versioned`: a product read from Redis is never older than the last acknowledged write.
//!
//! - Postgres owns the version (`version = version + 1` in the statement that changes the row);
//!   Redis only holds copies, so losing Redis data can never make a version go back.
//! - Write-through: after commit, `publish.lua` stores the payload under its version key and
//!   raises the pointer only if it is lower. The client is answered after that.
//! - Read: `read.lua` returns the pointer and the payload under it in one round trip. A hit
//!   serves the stored bytes as they are and never touches Postgres.
//! - Miss: one Postgres read per product at a time on this instance, then a fill through
//!   `publish.lua` under the version read with the row. A fill needs the lease its miss took:
//!   any publish since (or a loss of Redis data) ends the lease, so a slow fill can never put
//!   back a version older than one already acknowledged.
//! - Deletes are versions too: an empty payload is a tombstone and answers 404.
//! - Every key has the safety TTL; a publish deletes the payload it replaced.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    LazyLock,
};

use redis::Script;
use sqlx::PgPool;

use super::{
    single_flight::{SingleFlight, Turn},
    CacheBackend, CacheError, CacheStatus, CachedCopy, ProductKeys, ProductRead, VersionedBody,
};
use crate::{error::ApiResult, product::ProductState};

static READ: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("read.lua")));
static PUBLISH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("publish.lua")));

/// The payload that marks a deleted product.
const TOMBSTONE: &[u8] = b"";

/// How long a miss's fill lease lives. A fill slower than this is refused, which is safe.
const LEASE_TTL_MS: u64 = 10_000;

/// The lease token a publish passes: it ends leases instead of needing one.
const NO_LEASE: &str = "";

pub struct VersionedCache {
    backend: CacheBackend,
    flights: SingleFlight,
    /// Lease tokens: unique per instance (`instance`) and per miss (`next_lease`).
    instance: String,
    next_lease: AtomicU64,
}

/// What `read.lua` found.
enum Lookup {
    /// The payload of the current version: a product, or `None` for a tombstone.
    Hit(Option<VersionedBody>),
    /// No payload for the current version; fill with this lease after reading Postgres.
    Miss { lease: String },
}

impl VersionedCache {
    pub(super) fn new(backend: CacheBackend) -> Self {
        Self {
            backend,
            flights: SingleFlight::default(),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            next_lease: AtomicU64::new(1),
        }
    }

    pub(super) fn backend(&self) -> &CacheBackend {
        &self.backend
    }

    pub async fn read(&self, db: &PgPool, id: i64) -> ApiResult<ProductRead> {
        let keys = self.backend.keys(id);
        let mark = self.flights.mark();
        let lease = match self.lookup(&keys).await {
            Ok(Lookup::Hit(found)) => return Ok(hit(found)),
            Ok(Lookup::Miss { lease }) => lease,
            Err(error) => return self.backend.bypass(db, id, error).await,
        };
        match self.flights.join(id) {
            Turn::Lead(_leader) if self.flights.finished_since(mark) => {
                // A flight ended while this lookup ran; it may have filled this product.
                self.look_again_or_fill(db, &keys, id).await
            }
            Turn::Lead(_leader) => self.fill(db, &keys, id, &lease).await,
            Turn::Follow(leader) => {
                leader.wait().await;
                // The leader has most likely filled the cache: look again rather than take its
                // row, which may predate this read.
                self.look_again_or_fill(db, &keys, id).await
            }
        }
    }

    async fn look_again_or_fill(
        &self,
        db: &PgPool,
        keys: &ProductKeys,
        id: i64,
    ) -> ApiResult<ProductRead> {
        match self.lookup(keys).await {
            Ok(Lookup::Hit(found)) => Ok(hit(found)),
            Ok(Lookup::Miss { lease }) => self.fill(db, keys, id, &lease).await,
            Err(error) => self.backend.bypass(db, id, error).await,
        }
    }

    /// Publishes a committed change: its payload under its version, the pointer raised.
    pub async fn publish(&self, state: &ProductState) -> Result<(), CacheError> {
        let keys = self.backend.keys(state.id());
        self.store(&keys, state, NO_LEASE).await.map(|_| ())
    }

    /// The pointer and the payload under it, read with two GETs and no lease.
    pub async fn peek(&self, id: i64) -> Result<Option<CachedCopy>, CacheError> {
        let keys = self.backend.keys(id);
        let redis = self.backend.redis();
        let version: Option<i64> = redis
            .query(redis::cmd("GET").arg(keys.version_pointer()))
            .await?;
        let Some(version) = version else {
            return Ok(None);
        };
        let payload: Option<Vec<u8>> = redis
            .query(redis::cmd("GET").arg(keys.payload(version)))
            .await?;
        Ok(payload.map(|payload| CachedCopy {
            version,
            payload: decode(version, payload).map(|body| body.body),
        }))
    }

    /// Drops the pointer, whatever it says, then publishes `current`.
    pub async fn repair(&self, current: &ProductState) -> Result<(), CacheError> {
        let keys = self.backend.keys(current.id());
        self.backend
            .redis()
            .query::<()>(redis::cmd("DEL").arg(keys.version_pointer()))
            .await?;
        self.publish(current).await
    }

    async fn lookup(&self, keys: &ProductKeys) -> Result<Lookup, CacheError> {
        let lease = format!(
            "{}:{}",
            self.instance,
            self.next_lease.fetch_add(1, Ordering::Relaxed)
        );
        let (version, payload, lease): (Option<i64>, Option<Vec<u8>>, Option<String>) = self
            .backend
            .redis()
            .invoke(
                READ.key(keys.version_pointer())
                    .key(keys.fill_lease())
                    .arg(keys.payload_prefix())
                    .arg(lease)
                    .arg(LEASE_TTL_MS),
            )
            .await?;
        match (version, payload, lease) {
            (Some(version), Some(payload), _) => Ok(Lookup::Hit(decode(version, payload))),
            (_, None, Some(lease)) => Ok(Lookup::Miss { lease }),
            _ => Err(CacheError::Protocol(
                "read.lua: neither a hit nor a lease".into(),
            )),
        }
    }

    /// Reads Postgres and stores what it read under the version read with it, if the lease
    /// still holds and no newer version is published.
    async fn fill(
        &self,
        db: &PgPool,
        keys: &ProductKeys,
        id: i64,
        lease: &str,
    ) -> ApiResult<ProductRead> {
        let state = self.backend.load(db, id).await?;
        self.backend.hooks.before_fill(id).await;
        // An id that never existed is not cached: ids are cheap to invent.
        if let Some(state) = &state {
            match self.store(keys, state, lease).await {
                Ok(true) => {}
                Ok(false) => self.backend.metrics.fills_refused.increment(1),
                Err(error) => tracing::debug!(product = id, %error, "cache fill failed"),
            }
        }
        Ok(ProductRead {
            found: state.as_ref().and_then(VersionedBody::of_state),
            status: CacheStatus::Miss,
        })
    }

    /// Runs `publish.lua`; `Ok(false)` when the version was refused.
    async fn store(
        &self,
        keys: &ProductKeys,
        state: &ProductState,
        lease: &str,
    ) -> Result<bool, CacheError> {
        let payload = match state {
            ProductState::Live(product) => VersionedBody::of(product).body,
            ProductState::Deleted { .. } => TOMBSTONE.into(),
        };
        let version = state.version();
        let stored: i64 = self
            .backend
            .redis()
            .invoke(
                PUBLISH
                    .key(keys.version_pointer())
                    .key(keys.payload(version))
                    .key(keys.fill_lease())
                    .arg(version)
                    .arg(payload.as_ref())
                    .arg(self.backend.ttl_secs())
                    .arg(keys.payload_prefix())
                    .arg(lease),
            )
            .await?;
        Ok(stored == 1)
    }
}

fn hit(found: Option<VersionedBody>) -> ProductRead {
    ProductRead {
        found,
        status: CacheStatus::Hit,
    }
}

fn decode(version: i64, payload: Vec<u8>) -> Option<VersionedBody> {
    (payload != TOMBSTONE).then(|| VersionedBody {
        version,
        body: payload.into(),
    })
}
