//! What a writer does when its publish fails: it hands the change to the other instances'
//! relays, and waits a little for one of them to publish it before it answers.
//!
//! A change whose publish failed keeps its outbox row, and some relay publishes it later. For
//! an instance cut off from Redis while the others reach it (a partition that silently drops
//! its packets, or a connection TCP is slowly bringing back), "later" was the grace period the
//! relays give a writer that is still publishing: the other instances served the older copy
//! for up to `relay::GRACE` + `relay::POLL_INTERVAL` after each such acknowledgement, for as
//! long as the cut lasted (found by `scripts/containers check`; held by `stalecheck`'s
//! `instance-redis-partition`). Now the writer marks the rows as handed off and notifies the
//! relays; another instance's relay takes them at once, and the writer answers once they are
//! gone (published), so the write is visible everywhere when it is acknowledged.
//!
//! Bound: the writer waits at most `WAIT` (plus a near-cache lease with the near cache on: the
//! other instance's publish may wait that long for a holder, `wait`). When nobody can publish
//! (Redis down or refusing writes for every instance) the write is answered after that, and
//! the relay's repair bound applies as before; reads meanwhile go to Postgres wherever Redis
//! does not answer them.

use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

use crate::db;

/// Longest time a writer waits for another instance to publish what it could not, without the
/// near cache.
pub(crate) const WAIT: Duration = Duration::from_millis(500);

/// What the near cache adds to a publish at most, beyond its lease: the lease margin
/// (`lease / 20 + 5 ms`) and two script calls.
const NEAR_CACHE_SLACK: Duration = Duration::from_millis(100);

/// How long a hand-off waits: `WAIT`, plus, with the near cache, the longest its fan-out may
/// wait for a holder (a lease, `near_cache_lease`), so that the publish it waits for can finish.
pub(crate) fn wait(near_cache_lease: Option<Duration>) -> Duration {
    match near_cache_lease {
        Some(lease) => WAIT + lease + lease / 20 + NEAR_CACHE_SLACK,
        None => WAIT,
    }
}
/// First pause before looking again whether the rows are gone; it doubles up to
/// `LONGEST_PAUSE`. A relay woken by the notification usually publishes within a few
/// milliseconds.
const FIRST_PAUSE: Duration = Duration::from_millis(2);
const LONGEST_PAUSE: Duration = Duration::from_millis(50);

/// How a hand-off ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandOff {
    /// Another instance published every change.
    Published,
    /// Not within `WAIT`: the rows stay for whichever relay reaches Redis first.
    TimedOut,
    /// Postgres refused the hand-off itself; the rows stay, under the grace period.
    Failed,
}

impl HandOff {
    fn label(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::TimedOut => "timed_out",
            Self::Failed => "failed",
        }
    }
}

/// Hands `changes` (product id, version) over to the other instances' relays and waits for
/// them to be published, at most `wait` (see `wait()`).
pub(crate) async fn hand_off(
    db: &PgPool,
    instance: &str,
    changes: &[(i64, i64)],
    wait: Duration,
) -> HandOff {
    let deadline = Instant::now() + wait;
    let outcome = match db::outbox::hand_off(db, instance, changes).await {
        Ok(()) => wait_until_published(db, changes, deadline).await,
        Err(error) => {
            tracing::warn!(%error, "handing unpublished changes to the other relays failed");
            HandOff::Failed
        }
    };
    if outcome == HandOff::TimedOut {
        // Not a warning: while Redis is down for every instance, each write ends here, and the
        // outage is logged once already (`cache::reachability`); the counter below counts them.
        tracing::debug!(
            changes = changes.len(),
            "no other instance published this instance's unpublished changes within {wait:?}; \
             answering anyway (the relays publish them once one reaches Redis)"
        );
    }
    metrics::counter!("outbox_handoffs_total", "outcome" => outcome.label()).increment(1);
    outcome
}

/// Waits until none of `changes` waits for its publish any more, at most `wait`; whether
/// they were published by then.
///
/// Also for a read Redis did not answer (`cache::versioned`): it read the row from Postgres,
/// whose version may still be publishing (by a writer cut off from Redis, through its
/// hand-off), while the instances that reach Redis serve the version before it. Answering at
/// once would let a later read elsewhere go back from what this one returned.
pub(crate) async fn wait_published(db: &PgPool, changes: &[(i64, i64)], wait: Duration) -> bool {
    wait_until_published(db, changes, Instant::now() + wait).await == HandOff::Published
}

async fn wait_until_published(db: &PgPool, changes: &[(i64, i64)], deadline: Instant) -> HandOff {
    let mut pause = FIRST_PAUSE;
    loop {
        match db::outbox::any_pending(db, changes).await {
            Ok(false) => return HandOff::Published,
            Ok(true) => {}
            Err(_) => return HandOff::Failed,
        }
        let now = Instant::now();
        if now >= deadline {
            return HandOff::TimedOut;
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}
