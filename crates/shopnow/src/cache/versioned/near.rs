//! The near cache (`SHOPNOW_NEAR_CACHE=on`): copies of products in the instance's own memory,
//! served without a Redis round trip, and still never older than the last acknowledged write.
//!
//! Every near cache in the peers is told of a change after the write was acknowledged, so for
//! a while it serves what is gone. Here a write is acknowledged only once every instance that
//! may serve an older copy from memory has dropped it, or can no longer serve it:
//!
//! - **A lease per instance.** An instance serves from memory only while it holds a lease in
//!   the registry (`<prefix>:near:instances`: instance, lease end in Redis's time). It renews
//!   it every `lease / 5` (`near_renew.lua`), and the renewal sends a tick through the
//!   instance's own channel. The lease counts only when the tick arrives, from the moment the
//!   renewal was *sent*, minus a margin: the instance's end is always before Redis's, and a
//!   lease never outlives the subscription that carries invalidations. Pub/sub delivers one
//!   channel's messages in order, so every invalidation published before a renewal was handled
//!   before its tick extends anything.
//! - **Holders drop a copy before any reader can see the version after it.** Every path that
//!   shows a version Redis does not have yet tells every leased instance first
//!   (`near_fan_out.lua`) and waits until each one acknowledged or its lease ended: a publish
//!   (the API's writes, the relay, hand-offs) before `publish.lua`, a fill before `fill.lua`
//!   and before it answers what it read from Postgres, a repair before its `DEL`. Telling
//!   them after would let one instance answer the new version from Redis while another still
//!   answers the old one from memory (a read going back after a read). A paused, partitioned
//!   or dead instance delays these paths by at most the lease; a lost message costs the same
//!   wait, never a stale read.
//! - **A holder told of stamp s installs nothing older than s** (its *floor* for the
//!   product) for `FLOOR_TTL`: until the publish lands, Redis still serves the old copy, and a
//!   lookup must not put it back in memory; nor may a lookup sent before the publish, answered
//!   after one sent since. No copy replaces a newer one. A publish or fill more than
//!   `LAND_WITHIN` after its fan-out is refused by its script and told again, so no floor can
//!   run out before the version it waits for lands.
//! - **The loss of the subscription voids every lookup in flight** (a generation): what they
//!   read may be a copy whose invalidation went nowhere.
//! - **A gap in an instance's lease drops every copy it holds.** Writers skip an instance
//!   whose lease ran out (paused, slow, or lost with the registry), so when a renewal finds
//!   that its previous lease had ended, or was gone, the instance drops every copy before the
//!   new lease counts, and installs nothing for `LAND_WITHIN`: what writers that passed it by
//!   showed lands by then, and no floor protects it from the copies before.
//! - **Losing the registry** (FLUSHALL, a restart, an eviction) loses no lease. A writer that
//!   finds no registry waits one lease; one made again less than a lease ago may not list an
//!   instance that still holds one, so a writer waits until a lease has passed since it was
//!   made.
//! - **Losing the subscription** drops every copy, and nothing is served until a new one
//!   works and a tick came through it, nor installed for `LAND_WITHIN` after that: the
//!   messages sent meanwhile are gone. A subscription that carried no tick for four leases is
//!   taken for dead.
//! - With Redis replicas, nothing is served from memory: a failover could bring back an older
//!   registry, and renewals are not confirmed by `WAIT`.
//!
//! Memory is bounded by entries and bytes (`SHOPNOW_NEAR_CACHE_ENTRIES`, `_BYTES`), evicted by
//! CLOCK (second chance): a product read since the hand last passed stays.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        LazyLock, Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use redis::{Script, Value};
use tokio::sync::mpsc;

use super::{
    super::{backend::CacheBackend, read::CachedCopy, redis::CacheError},
    near_config::NearCacheConfig,
};

static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("near_renew.lua")));
static FAN_OUT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("near_fan_out.lua")));

/// What an entry costs beside its JSON: the map slot, the copy's fields, the CLOCK queue slot.
const ENTRY_OVERHEAD_BYTES: usize = 128;

/// Renewals whose ticks are awaited; older ones are forgotten (their ticks can only be late).
const RENEWALS_REMEMBERED: usize = 32;

/// A version shown after a fan-out (published, or filled from Postgres) must land in Redis
/// within this of the fan-out, in Redis's time, or tell the holders again (`publish.lua` and
/// `fill.lua` refuse it later). So a floor need not outlast it by much, and an instance that
/// writers may have passed by (a gap in its lease or its subscription) waits this long before
/// it installs anything: by then whatever they showed has landed.
pub(super) const LAND_WITHIN: Duration = Duration::from_secs(1);

/// How long a holder keeps a floor it was told of: `LAND_WITHIN` and a margin.
const FLOOR_TTL: Duration = Duration::from_secs(3);

/// Floors kept at most, beyond which every copy is dropped and nothing installed for
/// `FLOOR_TTL` (a floor lasts seconds; only a storm of writes fills this).
const MAX_FLOORS: usize = 100_000;

pub(crate) struct NearCache {
    config: NearCacheConfig,
    /// This instance's name in the registry and in its channel.
    instance: String,
    /// `<prefix>:near:`, the channels' common prefix; `<prefix>:near:<instance>` is ours.
    channels: String,
    channel: String,
    registry: String,
    /// Monotonic time base of `serve_until`.
    epoch: Instant,
    /// Until when (nanoseconds after `epoch`) copies may be served; 0: not now.
    serve_until: AtomicU64,
    store: Mutex<Store>,
    /// Renewals sent and not yet ticked: sequence number, when sent.
    renewals: Mutex<VecDeque<(u64, Instant)>>,
    /// Writes of this instance waiting for acknowledgements: sequence number, where to say who.
    waiting: Mutex<HashMap<u64, mpsc::UnboundedSender<String>>>,
    next_sequence: AtomicU64,
    /// Which node the subscription tries next.
    subscription_attempt: AtomicUsize,
    metrics: NearMetrics,
}

struct NearMetrics {
    entries: metrics::Gauge,
    bytes: metrics::Gauge,
    /// Instances a write told, by how the wait for each ended.
    acknowledged: metrics::Counter,
    waited_out: metrics::Counter,
    /// Writes that waited for a lost or new registry.
    registry_waits: metrics::Counter,
    /// Every copy dropped at once: the subscription was lost, or the registry.
    resets: metrics::Counter,
}

/// The copies in memory and the floors; one lock, so that an invalidation and an install of
/// the same product are ordered.
#[derive(Default)]
struct Store {
    /// Raised by every reset: a ticket of an older generation installs nothing.
    generation: u64,
    entries: HashMap<i64, Entry>,
    /// CLOCK's hand goes round this queue; it may name products no longer held (skipped).
    hand: VecDeque<i64>,
    bytes: usize,
    /// Per product, the newest stamp an invalidation named, and until when it stands.
    floors: HashMap<i64, (i64, Instant)>,
    /// Invalidations so far: every 1024th forgets the floors that ran out.
    invalidations: u64,
    /// Nothing is installed before this (set when `floors` overflowed).
    no_installs_until: Option<Instant>,
}

struct Entry {
    copy: CachedCopy,
    bytes: usize,
    /// Read since the hand last passed: spared once.
    referenced: bool,
}

/// A Redis lookup in flight; what it read may be installed if no reset came meanwhile and no
/// floor forbids it.
pub(super) struct Ticket<'a> {
    near: &'a NearCache,
    id: i64,
    generation: u64,
}

impl NearCache {
    pub(super) fn new(config: NearCacheConfig, instance: &str, prefix: &str) -> Self {
        let channels = format!("{prefix}:near:");
        let gauge = |name: &'static str| metrics::gauge!(name);
        let waits = |outcome: &'static str| metrics::counter!("near_cache_invalidations_total", "outcome" => outcome);
        Self {
            channel: format!("{channels}{instance}"),
            registry: format!("{prefix}:near:instances"),
            channels,
            instance: instance.to_string(),
            config,
            epoch: Instant::now(),
            serve_until: AtomicU64::new(0),
            store: Mutex::default(),
            renewals: Mutex::default(),
            waiting: Mutex::default(),
            next_sequence: AtomicU64::new(1),
            subscription_attempt: AtomicUsize::new(0),
            metrics: NearMetrics {
                entries: gauge("near_cache_entries"),
                bytes: gauge("near_cache_bytes"),
                acknowledged: waits("acknowledged"),
                waited_out: waits("lease_ended"),
                registry_waits: metrics::counter!("near_cache_registry_waits_total"),
                resets: metrics::counter!("near_cache_resets_total"),
            },
        }
    }

    /// The margin taken off every lease on the holder's side and added on the writer's: clock
    /// rates differ a little, timers fire late.
    fn margin(&self) -> Duration {
        self.config.lease / 20 + Duration::from_millis(5)
    }

    /// How long an instance installs nothing after a reset: see `LAND_WITHIN`.
    fn quiet(&self) -> Duration {
        LAND_WITHIN + self.margin()
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_nanos(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// The copy of `id` in memory, if the lease lets it be served now.
    pub(super) fn get(&self, id: i64) -> Option<CachedCopy> {
        if self.now_nanos() >= self.serve_until.load(Ordering::Acquire) {
            return None;
        }
        let mut store = self.store();
        let entry = store.entries.get_mut(&id)?;
        entry.referenced = true;
        Some(entry.copy.clone())
    }

    /// Starts a Redis lookup of `id` whose answer may be installed.
    pub(super) fn ticket(&self, id: i64) -> Ticket<'_> {
        Ticket {
            near: self,
            id,
            generation: self.store().generation,
        }
    }

    /// Drops the copy of `id`, and installs nothing of it older than `stamp` for `FLOOR_TTL`.
    pub(super) fn invalidate(&self, id: i64, stamp: i64) {
        let now = Instant::now();
        let mut store = self.store();
        if let Some(entry) = store.entries.remove(&id) {
            store.bytes -= entry.bytes;
        }
        store.invalidations += 1;
        if store.floors.len() >= MAX_FLOORS || store.invalidations % 1024 == 0 {
            store.floors.retain(|_, &mut (_, until)| until > now);
        }
        if store.floors.len() >= MAX_FLOORS {
            // Forgetting a floor could install what it forbids: forbid everything instead.
            store.floors.clear();
            drop(store);
            self.reset("too many floors", FLOOR_TTL);
            return;
        }
        let floor = store.floors.entry(id).or_insert((stamp, now));
        let newest = if floor.1 > now {
            floor.0.max(stamp)
        } else {
            stamp
        };
        *floor = (newest, now + FLOOR_TTL);
        self.publish_size(&store);
    }

    /// Drops every copy and voids every lookup in flight, serves nothing until a lease is
    /// confirmed again (`serve_until` is raised only by a tick), and installs nothing for
    /// `quiet`: writers may have passed this instance by, and what they showed must land first.
    fn reset(&self, why: &str, quiet: Duration) {
        self.serve_until.store(0, Ordering::Release);
        let mut store = self.store();
        store.generation += 1;
        let quiet_until = Instant::now() + quiet;
        store.no_installs_until = Some(
            store
                .no_installs_until
                .map_or(quiet_until, |until| until.max(quiet_until)),
        );
        if !store.entries.is_empty() {
            tracing::debug!(
                entries = store.entries.len(),
                why,
                "near cache dropped every copy"
            );
        }
        store.entries.clear();
        store.hand.clear();
        store.bytes = 0;
        self.publish_size(&store);
        self.metrics.resets.increment(1);
    }

    fn publish_size(&self, store: &Store) {
        self.metrics.entries.set(store.entries.len() as f64);
        self.metrics.bytes.set(store.bytes as f64);
    }

    /// Stores `copy`, read under `ticket`, unless the ticket was voided; evicts to the bounds.
    fn install(&self, ticket: &Ticket<'_>, copy: &CachedCopy) {
        let bytes = ENTRY_OVERHEAD_BYTES
            + copy.payload.as_ref().map_or(0, |payload| payload.len())
            + copy.reservations.entries().len() * 16;
        if bytes > self.config.max_bytes {
            return;
        }
        let now = Instant::now();
        let mut store = self.store();
        if store.generation != ticket.generation
            || store.no_installs_until.is_some_and(|until| until > now)
        {
            return;
        }
        // A floor stands until it runs out, not until its version is installed: a lookup sent
        // before the publish landed may answer after one sent since.
        if let Some(&(floor, until)) = store.floors.get(&ticket.id) {
            if until > now && copy.stamp() < floor {
                return;
            }
        }
        if let Some(held) = store.entries.get(&ticket.id) {
            if held.copy.stamp() > copy.stamp() {
                return;
            }
        }
        let replaced = store.entries.insert(
            ticket.id,
            Entry {
                copy: copy.clone(),
                bytes,
                referenced: false,
            },
        );
        store.bytes += bytes;
        match replaced {
            Some(old) => store.bytes -= old.bytes,
            None => store.hand.push_back(ticket.id),
        }
        self.evict(&mut store);
        self.publish_size(&store);
    }

    /// CLOCK: the hand drops the first entry not read since it last passed, until both bounds
    /// hold.
    fn evict(&self, store: &mut Store) {
        while store.entries.len() > self.config.max_entries || store.bytes > self.config.max_bytes {
            let Some(id) = store.hand.pop_front() else {
                break;
            };
            let Some(entry) = store.entries.get_mut(&id) else {
                continue;
            };
            if entry.referenced {
                entry.referenced = false;
                store.hand.push_back(id);
            } else if let Some(entry) = store.entries.remove(&id) {
                store.bytes -= entry.bytes;
            }
        }
        // Products dropped by invalidations stay in the queue until the hand reaches them; keep
        // it from growing past twice the entries.
        if store.hand.len() > 2 * store.entries.len() + 64 {
            let Store { entries, hand, .. } = store;
            let mut seen = HashSet::with_capacity(entries.len());
            hand.retain(|id| entries.contains_key(id) && seen.insert(*id));
        }
    }

    /// Keeps the lease and the subscription until the task is aborted.
    pub(super) async fn run(&self, backend: &CacheBackend) {
        tokio::join!(self.subscribe(backend), self.renew(backend));
    }

    /// Renews the lease every fifth of its length. A failed renewal is not retried sooner: the
    /// lease runs out by itself, and the instance then reads Redis as without a near cache.
    async fn renew(&self, backend: &CacheBackend) {
        let mut interval = tokio::time::interval(self.config.lease / 5);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let redis = backend.redis();
        loop {
            interval.tick().await;
            if redis.confirms_replication() {
                // Replicas: serve nothing from memory (see the module's comment).
                continue;
            }
            let sequence = self.next_sequence.fetch_add(1, Ordering::Relaxed);
            {
                let mut renewals = self.renewals.lock().unwrap_or_else(|e| e.into_inner());
                if renewals.len() == RENEWALS_REMEMBERED {
                    renewals.pop_front();
                }
                renewals.push_back((sequence, Instant::now()));
            }
            let renewed: Result<i64, CacheError> = redis
                .invoke(
                    RENEW
                        .key(&self.registry)
                        .arg(&self.instance)
                        .arg(self.config.lease.as_millis() as u64)
                        .arg(&self.channel)
                        .arg(sequence)
                        .arg(if sequence % 64 == 0 { "1" } else { "0" }),
                )
                .await;
            if let Err(error) = renewed {
                tracing::debug!(%error, "near cache lease not renewed");
            }
        }
    }

    /// Keeps a subscription to this instance's channel and handles what comes through it. Any
    /// loss of it drops every copy: messages sent meanwhile are gone.
    async fn subscribe(&self, backend: &CacheBackend) {
        use futures::StreamExt;
        let redis = backend.redis();
        loop {
            self.reset("no subscription", self.quiet());
            let attempt = self.subscription_attempt.fetch_add(1, Ordering::Relaxed);
            let pubsub = match redis.subscribe(&self.channel, attempt).await {
                Ok(pubsub) => pubsub,
                Err(error) => {
                    tracing::debug!(%error, "near cache cannot subscribe");
                    tokio::time::sleep(self.config.lease / 5).await;
                    continue;
                }
            };
            // Lookups begun before the subscription worked may have read copies whose
            // invalidations went nowhere.
            self.reset("subscribed again", self.quiet());
            let mut messages = pubsub.into_on_message();
            // Ticks come every fifth of a lease: a subscription silent for longer than a few
            // leases is dead, however open its connection looks.
            let silence = 4 * self.config.lease;
            while let Ok(Some(message)) = tokio::time::timeout(silence, messages.next()).await {
                self.handle(backend, message.get_payload_bytes());
            }
            tracing::debug!("near cache subscription lost");
        }
    }

    /// One message from the channel: `t <sequence> <continuous>` (a renewal's tick),
    /// `i <writer> <sequence> <id> <stamp>` (drop a copy, then acknowledge),
    /// `a <sequence> <holder>` (an acknowledgement of one of this instance's fan-outs).
    fn handle(&self, backend: &CacheBackend, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload);
        let words: Vec<&str> = text.split(' ').collect();
        match words[..] {
            ["t", sequence, continuous] => {
                let Ok(sequence) = sequence.parse::<u64>() else {
                    return;
                };
                self.tick(sequence, continuous == "1");
            }
            ["i", writer, sequence, id, stamp] => {
                let (Ok(id), Ok(stamp)) = (id.parse::<i64>(), stamp.parse::<i64>()) else {
                    return;
                };
                self.invalidate(id, stamp);
                let ack = redis::cmd("PUBLISH")
                    .arg(format!("{}{writer}", self.channels))
                    .arg(format!("a {sequence} {}", self.instance))
                    .clone();
                let redis = backend.redis().clone();
                // The copy is gone; the writer waits for this or for the lease to end.
                tokio::spawn(async move {
                    if let Err(error) = redis.query::<Value>(&ack).await {
                        tracing::debug!(%error, "near cache acknowledgement not sent");
                    }
                });
            }
            ["a", sequence, holder] => {
                let Ok(sequence) = sequence.parse::<u64>() else {
                    return;
                };
                let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(sender) = waiting.get(&sequence) {
                    let _ = sender.send(holder.to_string());
                }
            }
            _ => tracing::debug!(message = %text, "near cache: unknown message"),
        }
    }

    /// A renewal's tick: its lease counts from when it was sent, to a margin before its end.
    fn tick(&self, sequence: u64, continuous: bool) {
        let sent = {
            let mut renewals = self.renewals.lock().unwrap_or_else(|e| e.into_inner());
            while renewals.front().is_some_and(|&(s, _)| s < sequence) {
                renewals.pop_front();
            }
            match renewals.front() {
                Some(&(s, sent)) if s == sequence => sent,
                _ => return,
            }
        };
        if !continuous {
            // The lease had run out or was lost: writes made meanwhile passed this instance by.
            self.reset("lease renewed after a gap", self.quiet());
        }
        let Some(until) = (sent + self.config.lease).checked_sub(self.margin()) else {
            return;
        };
        let until = until.saturating_duration_since(self.epoch).as_nanos() as u64;
        self.serve_until.fetch_max(until, Ordering::AcqRel);
    }

    /// Before stamp `stamp` of product `id` is shown from Postgres or published: drops this
    /// instance's copy, tells every other instance that may hold one, and returns once each
    /// acknowledged or its lease ended, with the Redis time (ms) by which the publish must
    /// land (`LAND_WITHIN`). An error means the others may not have been told: the caller
    /// shows and publishes nothing, and the outbox publishes the change later.
    pub(super) async fn fan_out(
        &self,
        backend: &CacheBackend,
        id: i64,
        stamp: i64,
    ) -> Result<i64, CacheError> {
        self.invalidate(id, stamp);
        let sequence = self.next_sequence.fetch_add(1, Ordering::Relaxed);
        let (sender, mut acknowledgements) = mpsc::unbounded_channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sequence, sender);
        let _registered = Registered {
            near: self,
            sequence,
        };
        let told: Vec<Value> = backend
            .redis()
            .invoke_publish(
                FAN_OUT
                    .key(&self.registry)
                    .arg(&self.instance)
                    .arg(&self.channels)
                    .arg(format!("i {} {sequence} {id} {stamp}", self.instance)),
            )
            .await?;
        let answered = Instant::now();
        let told = FanOut::parse(&told)
            .ok_or_else(|| CacheError::Protocol(format!("near_fan_out.lua answered {told:?}")))?;
        let margin = self.margin();
        let after = |ms: i64| answered + Duration::from_millis(ms.max(0) as u64) + margin;
        // Instances the registry may have lost: no acknowledgement can come from them, so their
        // leases must run out.
        let lease_ms = self.config.lease.as_millis() as i64;
        let unlisted_until = match told.created {
            None => Some(after(lease_ms)),
            Some(created) => {
                (created + lease_ms > told.now).then(|| after(created + lease_ms - told.now))
            }
        };
        if unlisted_until.is_some() {
            self.metrics.registry_waits.increment(1);
        }
        let mut pending: HashMap<String, Instant> = told
            .holders
            .into_iter()
            .map(|(holder, ends)| (holder, after(ends - told.now)))
            .collect();
        while let Some(until) = pending.values().copied().chain(unlisted_until).max() {
            match tokio::time::timeout_at(until.into(), acknowledgements.recv()).await {
                Ok(Some(holder)) => {
                    if pending.remove(&holder).is_some() {
                        self.metrics.acknowledged.increment(1);
                    }
                    if pending.is_empty() && unlisted_until.is_none() {
                        break;
                    }
                }
                Ok(None) | Err(_) => {
                    self.metrics.waited_out.increment(pending.len() as u64);
                    break;
                }
            }
        }
        Ok(told.now + LAND_WITHIN.as_millis() as i64)
    }
}

/// Unregisters a write's wait for acknowledgements however it ends.
struct Registered<'a> {
    near: &'a NearCache,
    sequence: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.near
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.sequence);
    }
}

impl Ticket<'_> {
    /// Installs what the lookup read, unless an invalidation or a reset came meanwhile.
    pub(super) fn install(self, copy: &CachedCopy) {
        self.near.install(&self, copy);
    }
}

/// What `near_fan_out.lua` answered.
#[derive(Debug, PartialEq, Eq)]
struct FanOut {
    /// Redis's time, in milliseconds.
    now: i64,
    /// When the registry was made; `None` when there was none.
    created: Option<i64>,
    /// The instances told, and when their leases end.
    holders: Vec<(String, i64)>,
}

impl FanOut {
    fn parse(answer: &[Value]) -> Option<Self> {
        let int = |value: &Value| match value {
            Value::Int(n) => Some(*n),
            _ => None,
        };
        let (now, created) = (int(answer.first()?)?, int(answer.get(1)?)?);
        let holders = answer[2..]
            .chunks(2)
            .map(|pair| match pair {
                [Value::BulkString(holder), ends] => {
                    Some((String::from_utf8(holder.clone()).ok()?, int(ends)?))
                }
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            now,
            created: (created >= 0).then_some(created),
            holders,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn copy(version: i64, json: &'static str) -> CachedCopy {
        CachedCopy {
            history: 0,
            version,
            payload: Some(Bytes::from_static(json.as_bytes())),
            reservations: Default::default(),
            rendered_at_ms: 0,
        }
    }

    fn near(max_entries: usize, max_bytes: usize) -> NearCache {
        let near = NearCache::new(
            NearCacheConfig {
                enabled: true,
                max_entries,
                max_bytes,
                lease: Duration::from_secs(60),
            },
            "me",
            "test",
        );
        near.serve_until.store(u64::MAX, Ordering::Release);
        near
    }

    #[test]
    fn nothing_older_than_an_invalidations_stamp_is_installed() {
        let near = near(10, 1 << 20);
        near.ticket(1).install(&copy(1, "{}"));
        near.invalidate(1, 2);
        assert_eq!(near.get(1), None, "dropped");
        near.ticket(1).install(&copy(1, "{}"));
        assert_eq!(
            near.get(1),
            None,
            "Redis still had the old copy: not installed"
        );
        near.invalidate(1, 3);
        near.invalidate(1, 2);
        near.ticket(1).install(&copy(2, "{}"));
        assert_eq!(near.get(1), None, "the floor is the newest stamp told");
        near.ticket(1).install(&copy(3, "{}"));
        assert_eq!(near.get(1).map(|c| c.version), Some(3));
        near.ticket(1).install(&copy(2, "{}"));
        assert_eq!(
            near.get(1).map(|c| c.version),
            Some(3),
            "a late answer never replaces a newer copy"
        );
    }

    #[test]
    fn a_reset_voids_lookups_in_flight_and_stops_serving() {
        let near = near(10, 1 << 20);
        near.ticket(1).install(&copy(1, "{}"));
        let ticket = near.ticket(2);
        near.reset("test", Duration::ZERO);
        ticket.install(&copy(1, "{}"));
        assert_eq!(near.store().entries.len(), 0);
        near.ticket(1).install(&copy(1, "{}"));
        assert_eq!(near.get(1), None, "nothing served until a tick");
    }

    #[test]
    fn memory_stays_within_both_bounds() {
        let near = near(50, 40 * (ENTRY_OVERHEAD_BYTES + 2));
        for id in 0..1_000 {
            near.ticket(id).install(&copy(1, "{}"));
            // A hot product read between installs stays.
            near.get(7);
            let store = near.store();
            assert!(store.entries.len() <= 50 && store.bytes <= 40 * (ENTRY_OVERHEAD_BYTES + 2));
            assert!(store.hand.len() <= 2 * store.entries.len() + 64);
        }
        assert_eq!(near.store().entries.len(), 40);
        assert!(near.get(7).is_some(), "the product read all along was kept");
    }

    #[test]
    fn ticks_confirm_leases_from_when_the_renewal_was_sent() {
        let near = near(10, 1 << 20);
        near.serve_until.store(0, Ordering::Release);
        near.ticket(1).install(&copy(1, "{}"));
        assert_eq!(near.get(1), None);
        near.renewals.lock().unwrap().push_back((5, Instant::now()));
        near.tick(4, true);
        assert_eq!(near.get(1), None, "an unknown renewal confirms nothing");
        near.tick(5, true);
        assert!(near.get(1).is_some());
        near.renewals.lock().unwrap().push_back((6, Instant::now()));
        near.tick(6, false);
        assert_eq!(
            near.get(1),
            None,
            "after a gap in the lease: every copy dropped"
        );
    }

    #[test]
    fn fan_out_answers_parse() {
        let answer = [
            Value::Int(1_000),
            Value::Int(-1),
            Value::BulkString(b"a".to_vec()),
            Value::Int(1_400),
        ];
        assert_eq!(
            FanOut::parse(&answer),
            Some(FanOut {
                now: 1_000,
                created: None,
                holders: vec![("a".into(), 1_400)]
            })
        );
        assert_eq!(FanOut::parse(&answer[..3]), None);
    }
}
