//! The newest history of the database this instance knows, and the watch that learns of a new
//! one and tells every other instance.
//!
//! A failover of Postgres that promotes an asynchronous standby may lose the old primary's last
//! commits; the promoted database starts a new timeline (a new history, `shopnow_history()`),
//! and hands out the lost versions' numbers again. Copies are ordered by (history, version), so
//! any write from the new history replaces a lost one's copy. What remains are copies of lost
//! writes of products nobody has written since: an instance serves a copy only if its history
//! is the newest it knows; an older one is a miss, filled again from the promoted database.
//!
//! How an instance learns of a new history, none of it by chance and none of it needing the
//! outbox rows the old primary took with it:
//! - every row it reads or writes carries the database's history (the same statement);
//! - every `WATCH_INTERVAL`, it asks Postgres (`SELECT shopnow_history()`) and Redis
//!   (`<prefix>:history`, raised to what it knows by `raise_history.lua`): one query and one
//!   script call per interval;
//! - when it learns of a new history from a row or a copy, it tells Redis at once.
//!
//! So within `WATCH_INTERVAL` of the first instance reaching the promoted database it knows,
//! and every other instance within `WATCH_INTERVAL` after that: copies of lost writes stop being
//! served within `CONVERGENCE_BOUND` everywhere, whatever the catalog's size (each is filled
//! again at its next read, one Postgres read per product).

use std::{
    sync::{
        atomic::{AtomicBool, AtomicI64, Ordering},
        Arc, LazyLock,
    },
    time::Duration,
};

use redis::Script;
use sqlx::PgPool;
use tokio::sync::Notify;

use super::{
    super::backend::CacheBackend,
    clock::{local_ms, ClockSamples, DatabaseClock},
};
use crate::db;

static RAISE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("raise_history.lua")));

/// Time between two looks at Postgres's and Redis's history.
pub(super) const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// From the first instance reaching a promoted database to no instance serving a copy of a
/// write the database lost: two watch intervals (plus a Redis call's timeout when Redis is slow).
pub const CONVERGENCE_BOUND: Duration = Duration::from_millis(2 * 500);

#[derive(Default)]
pub(crate) struct KnownHistory {
    newest: AtomicI64,
    /// Whether anything was learnt yet: the first history an instance sees is where it
    /// starts, not news.
    learnt: AtomicBool,
    /// Rung when `learn` raised `newest`, so that the watch tells Redis at once.
    raised: Notify,
}

impl KnownHistory {
    /// The newest history known: copies of older ones are not served.
    pub(crate) fn newest(&self) -> i64 {
        self.newest.load(Ordering::Acquire)
    }

    /// Learns that the database has history `history`.
    pub(crate) fn learn(&self, history: i64) {
        let before = self.newest.fetch_max(history, Ordering::AcqRel);
        let learnt_before = self.learnt.swap(true, Ordering::AcqRel);
        if history > before && !learnt_before {
            tracing::info!(history, "the database's history, as this instance starts");
            metrics::gauge!("cache_database_history").set(history as f64);
            self.raised.notify_one();
        } else if history > before {
            tracing::warn!(
                history,
                before,
                "the database started a new history (a failover or a point-in-time recovery): \
                 cached copies of the old one are filled again from it"
            );
            metrics::gauge!("cache_database_history").set(history as f64);
            self.raised.notify_one();
        }
    }

    /// Whether a copy of `history` may be served; a newer history is learnt on the way.
    pub(crate) fn is_current(&self, history: i64) -> bool {
        let newest = self.newest();
        if history > newest {
            self.learn(history);
        }
        history >= newest
    }
}

/// Runs until the task is aborted. The same query samples the database's clock (`clock`).
pub(crate) async fn watch(
    known: Arc<KnownHistory>,
    clock: Arc<DatabaseClock>,
    backend: CacheBackend,
    db: PgPool,
) {
    let key = backend.history_key();
    let mut samples = ClockSamples::default();
    let mut interval = tokio::time::interval(WATCH_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = known.raised.notified() => {}
        }
        let sent = local_ms();
        match db::history_and_clock(&db).await {
            Ok((history, database_ms)) => {
                samples.record(&clock, sent, database_ms, local_ms());
                known.learn(history);
            }
            Err(error) => tracing::debug!(%error, "reading the database's history failed"),
        }
        let told: Result<i64, _> = backend
            .redis()
            .invoke(RAISE.key(&key).arg(known.newest()))
            .await;
        match told {
            Ok(history) => known.learn(history),
            Err(error) => tracing::debug!(%error, "sharing the database's history failed"),
        }
    }
}
