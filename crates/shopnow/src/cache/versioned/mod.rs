//! `versioned`: a product read from Redis is never older than the last acknowledged write.
//!
//! The rule every path that writes a copy keeps (publish, relay, sampler repair, fill): once
//! version n of a product was acknowledged, the stored copy is either missing or at least n,
//! whatever is delayed, lost, evicted or restarted in between.
//!
//! - Postgres owns the version (`version = version + 1` in the statement that changes the row);
//!   Redis only holds copies, so losing Redis data can never make a version go back.
//! - Each product has one key, `<prefix>:{product:<id>}:current`, holding its version and its
//!   JSON together (`<version>\n<json>`). A read is one GET; the version comes with the bytes it
//!   describes, so a version and its content can never be read apart.
//! - Write-through: after commit, `publish.lua` replaces the copy only if it is stored and older
//!   (two writers may finish in any order). A missing copy stays missing: the publisher may have
//!   stalled past a newer acknowledged version whose copy Redis lost since. Every publish ends
//!   the fill lease. The client is answered after that.
//! - Miss: one Postgres read per product at a time on this instance, under a fill lease taken
//!   before the read (`lease.lua`); `fill.lua` stores the row only while the lease holds. Any
//!   publish since (or a loss of Redis data) ends the lease, so a slow fill can never put back a
//!   version older than one already acknowledged.
//! - Repair (the sampler found a wrong copy): the copy is dropped, never rewritten; the next read
//!   fills it.
//! - Deletes are versions too: a copy with an empty JSON is a tombstone and answers 404. An id
//!   that was never used is cached as version 0 without JSON, for a minute: reads of invented
//!   ids do not all reach Postgres, and a create (version 1) replaces it at once.
//! - The key has the safety TTL; a new version replaces the old one in place.
//! - Versions are ordered within a history of the database (`history`): a copy carries a
//!   stamp, (history, version) in one integer (`shopnow_contract::stamps`), and the scripts
//!   compare stamps. A copy of a history older than the newest the instance knows is a miss.
//! - With `SHOPNOW_NEAR_CACHE=on`, copies read are also kept in memory and served from there
//!   under a lease; every publish, fill and repair tells their holders first (`near`).

mod clock;
mod history;
mod near;
pub(super) mod near_config;
mod pages;
mod trust;

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, LazyLock,
};

use bytes::Bytes;
use redis::Script;
use sqlx::PgPool;

use futures::future::BoxFuture;

use shopnow_contract::ProductKeys;

use super::{
    backend::CacheBackend,
    read::{CacheStatus, CachedCopy, PageRead, ProductRead, VersionedBody},
    redis::CacheError,
    single_flight::{SingleFlight, Turn},
    strategy::Strategy,
};
use crate::{
    error::Result,
    handoff,
    model::{Listing, ProductState, Reservation, Reservations, ALL_SCOPE, LISTED},
};
use shopnow_contract::stamps;

static PUBLISH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("publish.lua")));
static LEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lease.lua")));
static FILL: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("fill.lua")));

/// How many times a publish tells the near caches again when it landed too late after them.
const PUBLISH_ATTEMPTS: usize = 3;

/// How many times a miss joins the single flight of its product before it fills on its own.
const FLIGHT_ROUNDS: usize = 3;

/// How long a miss's fill lease lives. A fill slower than this is refused, which is safe.
const LEASE_TTL_MS: u64 = 10_000;

/// The version of the copy that says "no product has this id": below every real version (they
/// start at 1), so the publish of a create replaces it.
const ABSENT: i64 = 0;

/// How long "no product has this id" is cached. Short: ids are cheap to invent, and each one
/// read holds a key this long.
const ABSENT_TTL_SECS: u64 = 60;

use self::{clock::DatabaseClock, history::KnownHistory, near::NearCache, trust::Trust};
pub use self::{history::CONVERGENCE_BOUND, near_config::NearCacheConfig};

pub(super) struct VersionedCache {
    backend: CacheBackend,
    flights: SingleFlight,
    known_history: Arc<KnownHistory>,
    /// What the holds a copy lists are judged by when it is served.
    clock: Arc<DatabaseClock>,
    /// Publishes by outcome, in the order of `Published::ALL`.
    publishes: [metrics::Counter; 3],
    /// Lease and fence tokens: unique per instance (`backend.instance`) and per use.
    next_lease: AtomicU64,
    /// Copies in this instance's memory (`SHOPNOW_NEAR_CACHE=on`).
    near: Option<NearCache>,
    /// Which products' copies may be served: none whose change was shown unpublished.
    trust: Trust,
}

impl VersionedCache {
    pub(super) fn new(backend: CacheBackend) -> Self {
        let near = backend
            .near
            .enabled
            .then(|| NearCache::new(backend.near.clone(), &backend.instance, backend.prefix()));
        Self {
            near,
            backend,
            flights: SingleFlight::default(),
            known_history: Arc::default(),
            clock: Arc::default(),
            publishes: Published::ALL.map(|outcome| {
                metrics::counter!(
                    "cache_publishes_total",
                    "strategy" => shopnow_contract::strategies::VERSIONED,
                    "result" => outcome.as_str()
                )
            }),
            next_lease: AtomicU64::new(1),
            trust: Trust::default(),
        }
    }

    async fn read(&self, db: &PgPool, id: i64) -> Result<ProductRead> {
        if let Some(copy) = self.near.as_ref().and_then(|near| near.get(id)) {
            if self.may_serve(id, &copy) {
                return Ok(ProductRead {
                    status: CacheStatus::Near,
                    ..self.hit(copy)
                });
            }
        }
        let keys = self.backend.keys(id);
        // A follower whose leader's fill was refused (a publish ended its lease meanwhile)
        // joins the flight again: a refused fill costs one more Postgres read, not one per
        // reader waiting for it.
        for _ in 0..FLIGHT_ROUNDS {
            let mark = self.flights.mark();
            match self.lookup_for_read(id, &keys).await {
                Ok(Some(copy)) if self.may_serve(id, &copy) => return Ok(self.hit(copy)),
                // Missing, from a history the database no longer has, or not trusted (a change
                // of the product may have been shown unpublished, `trust`): fill it.
                Ok(_) => {}
                Err(error) => return self.bypass(db, id, error).await,
            }
            match self.flights.join(id) {
                Turn::Lead(_leader) => {
                    if self.flights.finished_since(mark) {
                        // A flight ended while this lookup ran; it may have filled this product.
                        match self.lookup_for_read(id, &keys).await {
                            Ok(Some(copy)) if self.may_serve(id, &copy) => {
                                return Ok(self.hit(copy))
                            }
                            Ok(_) => {}
                            Err(error) => return self.bypass(db, id, error).await,
                        }
                    }
                    return self.fill(db, &keys, id).await;
                }
                // The leader has most likely filled the cache: look again rather than take its
                // row, which may predate this read.
                Turn::Follow(leader) => leader.wait().await,
            }
        }
        self.fill(db, &keys, id).await
    }

    /// Publishes a committed change: its copy replaces an older stored one, and a missing copy
    /// stays missing (`publish.lua` says why).
    ///
    /// With replicas, the publish counts once they confirm it (`replication`); until then it
    /// answers `Unconfirmed`, and the caller leaves it to the outbox relay.
    async fn publish(&self, state: &ProductState) -> Result<Published, CacheError> {
        self.known_history.learn(state.history());
        let keys = self.backend.keys(state.id());
        let redis = self.backend.redis();
        for _ in 0..PUBLISH_ATTEMPTS {
            // The near caches drop the older copy before Redis shows this one (`near`).
            let land_by = match &self.near {
                Some(near) => near
                    .fan_out(&self.backend, state.id(), state.stamp())
                    .await?
                    .to_string(),
                None => String::new(),
            };
            let fence = if redis.confirms_replication() {
                self.token("publish")
            } else {
                String::new()
            };
            let mut publish = PUBLISH.prepare_invoke();
            publish
                .key(keys.current())
                .key(keys.fill_lease())
                .arg(state.stamp())
                .arg(encode_state(state))
                .arg(self.backend.ttl_secs())
                .arg(fence)
                .arg(land_by);
            // Both before the answer, in no order between them (a page is read from Postgres
            // under a generation read before it: `pages`); on one connection, so that the
            // `WAIT` below covers both.
            let (outcome, renewed) = tokio::join!(
                redis.invoke_publish::<i64>(&publish),
                self.renew_page_generations(state)
            );
            let outcome = outcome?;
            renewed?;
            redis.confirm_replicated().await?;
            return match outcome {
                1 => Ok(Published::Replaced),
                0 => Ok(Published::NewerKept),
                2 => Ok(Published::NothingStored),
                // Stalled past the near caches' floors: tell them again.
                3 => continue,
                other => Err(CacheError::Protocol(format!(
                    "publish.lua answered {other}"
                ))),
            };
        }
        Err(CacheError::Protocol(format!(
            "publish.lua: {PUBLISH_ATTEMPTS} publishes landed too late after their fan-out"
        )))
    }

    /// Replaces the generation of every list scope that lists `state` now (its categories, their
    /// ancestors, and `all`): each page stored before this change was committed, which may
    /// leave the product out or in the wrong place, stops being served (`pages`). A page that
    /// shows the product at an older version is caught by its own check, so a change that can
    /// only take the product off pages renews nothing: a deletion, a hold, an order, a
    /// correction down (`Product::cannot_enter_pages`).
    async fn renew_page_generations(&self, state: &ProductState) -> Result<(), CacheError> {
        let ProductState::Live(product) = state else {
            return Ok(());
        };
        if !state.may_enter_pages() {
            return Ok(());
        }
        let token = self.token("generation");
        let mut renew = redis::pipe();
        for scope in product
            .listed_in
            .iter()
            .map(String::as_str)
            .chain([ALL_SCOPE])
        {
            let keys = shopnow_contract::keys::PageKeys::new(self.backend.prefix(), scope);
            renew
                .cmd("SET")
                .arg(keys.generation())
                .arg(&token)
                .arg("EX")
                .arg(self.backend.ttl_secs())
                .ignore();
        }
        self.backend.redis().pipeline_publish(&renew).await
    }

    /// Drops a wrong copy. Writing the row read a moment ago instead could bring back a version
    /// older than one acknowledged meanwhile; the next read fills the key under a lease.
    async fn drop_copy(&self, id: i64) -> Result<(), CacheError> {
        if let Some(near) = &self.near {
            // The wrong copy may be in memory too; no version of the product is installed for
            // a while (the floor `i64::MAX`), then the next reads fill it again.
            near.fan_out(&self.backend, id, i64::MAX).await?;
        }
        self.backend
            .redis()
            .query::<()>(redis::cmd("DEL").arg(self.backend.keys(id).current()))
            .await
    }

    /// `lookup` for a read: with the near cache, a current copy it finds is kept in memory,
    /// unless an invalidation of the product came while the GET was in flight.
    async fn lookup_for_read(
        &self,
        id: i64,
        keys: &ProductKeys<'_>,
    ) -> Result<Option<CachedCopy>, CacheError> {
        let Some(near) = &self.near else {
            return self.lookup(keys).await;
        };
        let ticket = near.ticket(id);
        let copy = self.lookup(keys).await?;
        if let Some(copy) = &copy {
            if self.may_serve(id, copy) {
                ticket.install(copy);
            }
        }
        Ok(copy)
    }

    /// One GET: the product's versioned copy, if any.
    async fn lookup(&self, keys: &ProductKeys<'_>) -> Result<Option<CachedCopy>, CacheError> {
        let stored: Option<Vec<u8>> = self
            .backend
            .redis()
            .query(redis::cmd("GET").arg(keys.current()))
            .await?;
        match stored {
            None => Ok(None),
            Some(stored) => CachedCopy::decode(stored.into()).map(Some).ok_or_else(|| {
                CacheError::Protocol(format!("malformed copy under {}", keys.current()))
            }),
        }
    }

    /// A copy served: its holds judged by the database's clock now.
    fn hit(&self, copy: CachedCopy) -> ProductRead {
        ProductRead {
            found: copy.body_at(self.clock.now_ms()),
            status: CacheStatus::Hit,
        }
    }

    /// Whether `copy` of product `id` may be served: it belongs to the newest history of the
    /// database known, no change of the product was shown before it was published (`trust`),
    /// and the holds it lists still tell what is reserved (a copy lists only the first few).
    fn may_serve(&self, id: i64, copy: &CachedCopy) -> bool {
        self.may_serve_when(id, copy, || self.clock.now_ms())
    }

    /// `may_serve`, with the database's time read once for many copies (a list page's).
    fn may_serve_at(&self, id: i64, copy: &CachedCopy, now_ms: i64) -> bool {
        self.may_serve_when(id, copy, || now_ms)
    }

    /// The database's time is read only for a copy whose holds are not all listed.
    fn may_serve_when(&self, id: i64, copy: &CachedCopy, now_ms: impl FnOnce() -> i64) -> bool {
        let holds = &copy.reservations;
        self.known_history.is_current(copy.history)
            && self.trust.covers(id)
            && (holds.unlisted().is_none() || holds.tell_at(now_ms()))
    }

    /// Learns of new database histories and of changes shown unpublished until the task is
    /// aborted (`history`, `trust`). With the near cache, also keeps its lease and subscription.
    pub(super) async fn watch_history(&self, db: PgPool) {
        let history = history::watch(
            self.known_history.clone(),
            self.clock.clone(),
            self.backend.clone(),
            db.clone(),
        );
        let trust = trust::watch(&self.trust, db);
        match &self.near {
            Some(near) => {
                tokio::join!(history, trust, near.run(&self.backend));
            }
            None => {
                tokio::join!(history, trust);
            }
        }
    }

    /// A token no other lease or publish of any instance uses.
    fn token(&self, kind: &str) -> String {
        format!(
            "{}:{kind}:{}",
            self.backend.instance,
            self.next_lease.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// `lease.lua`: the lease a fill needs, taken before Postgres is read.
    async fn take_lease(&self, keys: &ProductKeys<'_>) -> Result<String, CacheError> {
        let token = self.token("fill");
        self.backend
            .redis()
            .invoke(LEASE.key(keys.fill_lease()).arg(token).arg(LEASE_TTL_MS))
            .await
    }

    /// Takes the lease, reads Postgres, and stores what it read under the version read with
    /// it, if the lease still holds and no newer version is stored.
    async fn fill(&self, db: &PgPool, keys: &ProductKeys<'_>, id: i64) -> Result<ProductRead> {
        let lease = match self.take_lease(keys).await {
            Ok(lease) => lease,
            Err(error) => return self.bypass(db, id, error).await,
        };
        let state = self.backend.load(db, id).await?;
        if let Some(state) = &state {
            self.known_history.learn(state.history());
        }
        let mut land_by = String::new();
        if let (Some(near), Some(state)) = (&self.near, &state) {
            // What this miss read may be newer than copies held in memory: they go first.
            match near.fan_out(&self.backend, id, state.stamp()).await {
                Ok(deadline) => land_by = deadline.to_string(),
                Err(error) => {
                    tracing::debug!(product = id, %error, "near caches not told before a fill");
                    let read_here = ProductRead {
                        found: VersionedBody::of_state(state),
                        status: CacheStatus::Miss,
                    };
                    return Ok(self.once_published(db, id, read_here).await);
                }
            }
        }
        self.backend.hooks.before_fill(id).await;
        // An id that was never used is cached too, as version 0 without JSON ("absent"), so
        // that reads of invented ids stop reaching Postgres; for a short while only, since
        // anyone can invent ids. A create publishes version 1, which replaces it at once.
        let (stamp, copy, ttl) = match &state {
            Some(state) => (state.stamp(), encode_state(state), self.backend.ttl_secs()),
            None => {
                let absent = stamps::stamp(self.known_history.newest(), ABSENT);
                (absent, encode(absent, None, None), ABSENT_TTL_SECS)
            }
        };
        let stored: Result<i64, CacheError> = self
            .backend
            .redis()
            .invoke(
                FILL.key(keys.current())
                    .key(keys.fill_lease())
                    .arg(stamp)
                    .arg(copy)
                    .arg(ttl)
                    .arg(&lease)
                    .arg(land_by),
            )
            .await;
        let read_here = ProductRead {
            found: state.as_ref().and_then(VersionedBody::of_state),
            status: CacheStatus::Miss,
        };
        match stored {
            Ok(1) => Ok(read_here),
            Ok(_) => {
                self.backend.metrics.fills_refused.increment(1);
                // Refused: a publish or another fill got there first. What this miss read may be
                // newer than the copy every other reader is served until the writes in flight
                // publish; answering it would let a later hit go back from it. So answer the
                // stored copy, which the rule keeps at least as new as every acknowledged write.
                // None that may be served (lost, or its product not trusted): what this miss
                // read, once no instance serves an older copy (`once_published`).
                match self.lookup(keys).await {
                    Ok(Some(copy)) if self.may_serve(id, &copy) => Ok(ProductRead {
                        status: CacheStatus::Miss,
                        ..self.hit(copy)
                    }),
                    _ => Ok(self.once_published(db, id, read_here).await),
                }
            }
            Err(error) => {
                tracing::debug!(product = id, %error, "cache fill failed");
                Ok(self.once_published(db, id, read_here).await)
            }
        }
    }

    /// Serves a read from Postgres because Redis did not answer it.
    async fn bypass(&self, db: &PgPool, id: i64, error: CacheError) -> Result<ProductRead> {
        let read = self.backend.bypass(db, id, error).await?;
        Ok(self.once_published(db, id, read).await)
    }

    /// `read`, from Postgres, once its version is published or no instance serves the copy
    /// before it any more (`handoff::before_showing`): until then the instances that reach
    /// Redis may serve the version before it, and a read there that starts after this one
    /// answered must not go back from it. Waits at most `handoff::wait`.
    async fn once_published(&self, db: &PgPool, id: i64, read: ProductRead) -> ProductRead {
        if let Some(body) = &read.found {
            let change = [(id, body.version)];
            let instance = &self.backend.instance;
            handoff::before_showing(db, instance, &change, self.handoff_wait()).await;
        }
        read
    }
}

impl Strategy for VersionedCache {
    fn read<'a>(&'a self, db: &'a PgPool, id: i64) -> BoxFuture<'a, Result<ProductRead>> {
        Box::pin(VersionedCache::read(self, db, id))
    }

    fn publishes(&self) -> bool {
        true
    }

    fn handoff_wait(&self) -> std::time::Duration {
        handoff::wait(self.near.as_ref().map(|_| self.backend.near.lease))
    }

    fn read_page<'a>(
        &'a self,
        db: &'a PgPool,
        listing: &'a Listing,
    ) -> BoxFuture<'a, Result<PageRead>> {
        Box::pin(VersionedCache::read_page(self, db, listing))
    }

    fn publish<'a>(&'a self, state: &'a ProductState) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            let published = VersionedCache::publish(self, state).await?;
            self.publishes[published as usize].increment(1);
            Ok(())
        })
    }

    fn peek(&self, id: i64) -> BoxFuture<'_, Result<Option<CachedCopy>, CacheError>> {
        Box::pin(async move { self.lookup(&self.backend.keys(id)).await })
    }

    fn drop_copy(&self, id: i64) -> BoxFuture<'_, Result<(), CacheError>> {
        Box::pin(VersionedCache::drop_copy(self, id))
    }

    fn prepare<'a>(&'a self, db: &'a PgPool) -> BoxFuture<'a, ()> {
        Box::pin(trust::first_look(&self.trust, db))
    }

    fn watch_history(&self, db: PgPool) -> BoxFuture<'_, ()> {
        Box::pin(VersionedCache::watch_history(self, db))
    }
}

/// What a publish did to the stored copy; the discriminant indexes `Published::ALL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Published {
    /// The stored copy was older and now holds this version.
    Replaced,
    /// The stored copy is at this version or newer, and stays.
    NewerKept,
    /// No copy was stored, and none is: the next read fills it.
    NothingStored,
}

impl Published {
    pub(super) const ALL: [Published; 3] = [Self::Replaced, Self::NewerKept, Self::NothingStored];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Replaced => "replaced",
            Self::NewerKept => "newer_kept",
            Self::NothingStored => "nothing_stored",
        }
    }
}

/// The copy of a product state: its stamp, then its JSON (none for a deletion). Of the row's
/// holds it keeps the first `LISTED` live ones (`Reservations::bounded`): its size does not grow
/// with the holds on the product.
fn encode_state(state: &ProductState) -> Vec<u8> {
    let body = VersionedBody::of_state(state).map(|body| body.body);
    let holds = match state {
        ProductState::Live(product) if !product.reservations.is_empty() => Some((
            product.read_at_ms,
            product.reservations.bounded(product.read_at_ms, LISTED),
        )),
        _ => None,
    };
    encode(
        state.stamp(),
        holds.as_ref().map(|(at, holds)| (*at, holds)),
        body.as_deref(),
    )
}

/// `<stamp>\n<json>`; a deletion's tombstone has nothing after the newline. A product whose row
/// lists holds has a line between: `@<rendered at>;<expiry>:<quantity>,...` (milliseconds,
/// by the database's clock), which a reader judges the holds by (`CachedCopy::body_at`), and,
/// when the row's entries are not all listed, `;<lapsed before them>;<first expiry after
/// them>:<their quantity>` (empty after the `;` when none follow). The scripts read the stamp
/// only; JSON starts with `{`, so the two lines cannot be mistaken.
fn encode(stamp: i64, holds: Option<(i64, &Reservations)>, json: Option<&[u8]>) -> Vec<u8> {
    let json = json.unwrap_or_default();
    let mut copy = Vec::with_capacity(20 + json.len());
    copy.extend_from_slice(stamp.to_string().as_bytes());
    copy.push(b'\n');
    if let Some((rendered_at_ms, reservations)) = holds {
        let entries: Vec<String> = reservations
            .entries()
            .iter()
            .map(|entry| format!("{}:{}", entry.expires_at, entry.quantity))
            .collect();
        let mut line = format!("@{rendered_at_ms};{}", entries.join(","));
        if reservations.skipped() > 0 || reservations.unlisted().is_some() {
            let unlisted = reservations
                .unlisted()
                .map(|rest| format!("{}:{}", rest.expires_at, rest.quantity))
                .unwrap_or_default();
            line.push_str(&format!(";{};{unlisted}", reservations.skipped()));
        }
        line.push('\n');
        copy.extend_from_slice(line.as_bytes());
    }
    copy.extend_from_slice(json);
    copy
}

/// `<expiry>:<quantity>`.
fn decode_entry(entry: &str) -> Option<Reservation> {
    let (expires_at, quantity) = entry.split_once(':')?;
    Some(Reservation {
        expires_at: expires_at.parse().ok()?,
        quantity: quantity.parse().ok()?,
    })
}

/// The holds line of a copy, without its `@` and newline.
fn decode_holds(line: &[u8]) -> Option<(i64, Reservations)> {
    let line = std::str::from_utf8(line).ok()?;
    let mut fields = line.split(';');
    let rendered_at = fields.next()?.parse().ok()?;
    let entries = fields
        .next()?
        .split(',')
        .filter(|entry| !entry.is_empty())
        .map(decode_entry)
        .collect::<Option<Vec<_>>>()?;
    let reservations = match (fields.next(), fields.next(), fields.next()) {
        (None, _, _) => Reservations::new(entries),
        (Some(skipped), Some(unlisted), None) => {
            let unlisted = match unlisted {
                "" => None,
                entry => Some(decode_entry(entry)?),
            };
            Reservations::part(skipped.parse().ok()?, entries, unlisted)
        }
        _ => return None,
    };
    Some((rendered_at, reservations))
}

impl CachedCopy {
    /// Reads a `versioned` copy as Redis stores it (`<stamp>\n[@<holds>\n]<json>`), without
    /// copying the JSON; `None` when it is not one.
    pub fn decode(stored: Bytes) -> Option<Self> {
        let newline = stored.iter().position(|&b| b == b'\n')?;
        let stamp = std::str::from_utf8(&stored[..newline]).ok()?.parse().ok()?;
        let (history, version) = stamps::split(stamp);
        let mut json = stored.slice(newline + 1..);
        let (mut rendered_at_ms, mut reservations) = (0, Reservations::default());
        if json.first() == Some(&b'@') {
            let end = json.iter().position(|&b| b == b'\n')?;
            (rendered_at_ms, reservations) = decode_holds(&json[1..end])?;
            json = json.slice(end + 1..);
        }
        Some(Self {
            history,
            version,
            payload: (!json.is_empty()).then_some(json),
            reservations,
            rendered_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_round_trip() {
        let copy = CachedCopy::decode(encode(12, None, Some(br#"{"id":1}"#)).into()).unwrap();
        assert_eq!(copy.version, 12);
        assert_eq!(copy.payload.as_deref(), Some(&br#"{"id":1}"#[..]));

        let tombstone = CachedCopy::decode(encode(13, None, None).into()).unwrap();
        assert_eq!((tombstone.version, tombstone.payload), (13, None));

        let promoted =
            CachedCopy::decode(encode(stamps::stamp(2, 5), None, Some(b"{}")).into()).unwrap();
        assert_eq!((promoted.history, promoted.version), (2, 5));

        assert!(CachedCopy::decode(Bytes::from_static(b"no newline")).is_none());
        assert!(CachedCopy::decode(Bytes::from_static(b"x\n{}")).is_none());
        assert!(CachedCopy::decode(Bytes::from_static(b"3\n@12;x:1\n{}")).is_none());
    }

    fn product_with_holds() -> crate::model::Product {
        let json = r#"{"id":7,"sku":"S","name":"N","description":"","price_cents":1,
            "currency":"USD","stock":10,"reserved":0,"available":0,"version":4,
            "updated_at":"2026-12-02T10:00:00Z"}"#;
        let mut product: crate::model::Product = serde_json::from_str(json).unwrap();
        product.reservations = Reservations::new(vec![
            Reservation {
                quantity: 2,
                expires_at: 2_000,
            },
            Reservation {
                quantity: 3,
                expires_at: 1_000,
            },
        ]);
        product.at(500)
    }

    #[test]
    fn a_copy_judges_its_holds_when_served() {
        let product = product_with_holds();
        assert_eq!((product.reserved, product.available), (5, 5));
        let stored = encode_state(&ProductState::Live(product.clone()));
        assert!(stored.starts_with(b"4\n@500;1000:3,2000:2\n{"));
        let copy = CachedCopy::decode(stored.into()).unwrap();
        assert_eq!(copy.reservations, product.reservations);

        let before = copy.body_at(999).unwrap();
        assert_eq!(
            before.body,
            VersionedBody::of(&product).body,
            "served as stored"
        );
        assert_eq!(before.etag(), "\"4\"");

        let after_first = copy.body_at(1_000).unwrap();
        assert_eq!(after_first.etag(), "\"4-1\"");
        let shown: crate::model::Product = serde_json::from_slice(&after_first.body).unwrap();
        assert_eq!((shown.reserved, shown.available), (2, 8));
        assert_eq!(after_first.body, VersionedBody::of(&product.at(1_000)).body);

        let after_both: crate::model::Product =
            serde_json::from_slice(&copy.body_at(5_000).unwrap().body).unwrap();
        assert_eq!((after_both.reserved, after_both.available), (0, 10));
    }

    #[test]
    fn a_copy_lists_a_few_holds_whatever_the_product_has_and_reads_as_the_row_does() {
        let mut product = product_with_holds();
        product.stock = 100_000;
        // A flash sale: holds lapsing in each of 600 seconds, two of them lapsed already.
        product.reservations = Reservations::new(
            (0..600)
                .map(|second| Reservation {
                    quantity: 10,
                    expires_at: 1_000 * second,
                })
                .collect(),
        );
        let product = product.at(1_500);
        let stored = encode_state(&ProductState::Live(product.clone()));
        let few = encode_state(&ProductState::Live(product_with_holds()));
        assert!(
            stored.len() < few.len() + 80,
            "{} bytes against {} for two holds",
            stored.len(),
            few.len()
        );
        let copy = CachedCopy::decode(stored.into()).unwrap();
        assert_eq!(copy.reservations.entries().len(), LISTED);
        for now in [1_500, 2_000, 4_999, 5_999] {
            assert!(copy.reservations.tell_at(now));
            let served = copy.body_at(now).unwrap();
            let from_postgres = VersionedBody::of(&product.at(now));
            assert_eq!(served.body, from_postgres.body, "at {now}");
            assert_eq!(served.etag(), from_postgres.etag(), "at {now}");
        }
        assert!(
            !copy.reservations.tell_at(6_000),
            "past its listed holds a copy is filled again"
        );
    }
}
