//! What an instance does before it shows a change that is not published yet: a writer whose
//! publish failed, or a read that Redis did not answer and that read the change from Postgres.
//! It hands the change to the other instances' relays, and answers once one of them published
//! it, or once no instance serves the copy from before it any more.
//!
//! A change whose publish failed keeps its outbox row, and some relay publishes it later.
//! Showing it before then breaks the promise in two ways:
//! - **one instance cut off** from Redis (a partition that silently drops its packets, or a
//!   connection TCP is slowly bringing back) while the others reach it: they serve the older
//!   copy until a relay publishes (found by `scripts/containers check`; held by `stalecheck`'s
//!   `instance-redis-partition`). So the instance marks the rows as handed off and notifies the
//!   relays; another instance's relay takes them at once, and the instance answers once they
//!   are gone (published): usually within milliseconds.
//! - **every instance cut off** (Redis paused, restarted, a one-replica deployment cut off, a
//!   partition at the Redis node): nobody can publish, and the instance cannot wait for ever.
//!   When Redis comes back it still holds the copies from before the change, and a read there
//!   could answer one before any relay's publish lands (found by `scripts/containers check`
//!   with one replica; held by `stalecheck`'s `redis-pause-all` and `redis-partition-all`).
//!   So the mark does more than wake the relays: every instance looks for handed-off rows
//!   every 200 ms and serves no copy of their products, from Redis or memory, under a lease
//!   of `TRUST_LEASE` counted from *before* its look (`cache::versioned::trust`).
//!   An instance that waited `TRUST_WAIT` after its mark committed knows that every lease
//!   taken before the mark has run out: every instance's next copy of the product comes from
//!   Postgres until the row is published. It records that on the row (`trust_ended_at`), so
//!   that reads that show the same change later answer at once, and answers.
//!
//! Bound: none. A change is shown only once it is published or no instance trusts the copy
//! before it. The wait is at most `wait()` (a trust lease, or with the near cache the publish
//! the other instance may make wait for a holder, whichever is longer); when Postgres itself
//! refuses the mark, the change is shown all the same and the relay's repair bound applies
//! (an instance that loses Postgres and Redis at once, between a commit and its publish).

use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

use crate::db::{self, outbox::Progress};

/// How long a look for marked rows lets an instance serve cached copies, counted from when the
/// look was sent (`cache::versioned::trust`).
pub(crate) const TRUST_LEASE: Duration = Duration::from_millis(1_000);

/// How long a hand-off waits for another instance to publish before it relies on the trust
/// leases instead, without the near cache: a trust lease and a margin for the clocks of two
/// machines running at slightly different rates.
pub(crate) const TRUST_WAIT: Duration = TRUST_LEASE.saturating_add(Duration::from_millis(20));

/// Without the near cache, how long a publish by another instance usually takes at most.
const PUBLISH_WAIT: Duration = Duration::from_millis(500);

/// What the near cache adds to a publish at most, beyond its lease: the lease margin
/// (`lease / 20 + 5 ms`) and two script calls.
const NEAR_CACHE_SLACK: Duration = Duration::from_millis(100);

/// How long a hand-off waits at most: `TRUST_WAIT`, or, with the near cache, the longest a
/// publish by another instance may wait for a holder (`near_cache_lease`) when that is longer,
/// so that the publish it waits for can finish.
pub(crate) fn wait(near_cache_lease: Option<Duration>) -> Duration {
    match near_cache_lease {
        Some(lease) => TRUST_WAIT.max(PUBLISH_WAIT + lease + lease / 20 + NEAR_CACHE_SLACK),
        None => TRUST_WAIT,
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
    /// Nobody published them in time; no instance serves a copy older than them any more.
    /// The rows stay for whichever relay reaches Redis first.
    Stranded,
    /// Postgres refused the hand-off itself; the rows stay, under the relay's repair bound.
    Failed,
}

impl HandOff {
    fn label(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Stranded => "stranded",
            Self::Failed => "failed",
        }
    }
}

/// Hands `changes` (product id, version), which this instance could not publish, over to the
/// other instances' relays, and returns once they can be shown (see the module), at most
/// `wait` after their mark (see `wait()`).
pub(crate) async fn hand_off(
    db: &PgPool,
    instance: &str,
    changes: &[(i64, i64)],
    wait: Duration,
) -> HandOff {
    let outcome = match db::outbox::hand_off(db, instance, changes).await {
        Ok(()) => wait_until_shown(db, changes, Instant::now(), wait).await,
        Err(error) => {
            tracing::warn!(%error, "handing unpublished changes to the other relays failed");
            HandOff::Failed
        }
    };
    if outcome == HandOff::Stranded {
        // Not a warning: while Redis is down for every instance, each write ends here, and the
        // outage is logged once already (`cache::reachability`); the counter below counts them.
        tracing::debug!(
            changes = changes.len(),
            "no instance published this instance's changes within {wait:?}; answering once \
             no instance trusted the copies before them (the relays publish them once one \
             reaches Redis)"
        );
    }
    metrics::counter!("outbox_handoffs_total", "outcome" => outcome.label()).increment(1);
    outcome
}

/// For a read Redis did not answer (`cache::versioned`): it read the row from Postgres, whose
/// version may not be published yet (by a writer cut off from Redis, through its hand-off),
/// while instances that reach Redis serve the version before it. Answering at once would let
/// a later read there go back from what this one returned. So: at once when the version is
/// published or no instance trusts the copy before it; otherwise it is handed off as a
/// writer's would be.
pub(crate) async fn before_showing(
    db: &PgPool,
    instance: &str,
    changes: &[(i64, i64)],
    wait: Duration,
) -> HandOff {
    match db::outbox::progress(db, changes).await {
        Ok(Progress::Published | Progress::TrustEnded) => HandOff::Published,
        Ok(Progress::Pending) => hand_off(db, instance, changes, wait).await,
        Err(_) => HandOff::Failed,
    }
}

/// Waits until `changes`, marked as handed off at `marked`, were published, or every
/// instance's trust in the copies before them ended. At `wait` after the mark (never less than
/// `TRUST_WAIT`: every lease taken before the mark has run out), this instance records that
/// trust ended itself.
async fn wait_until_shown(
    db: &PgPool,
    changes: &[(i64, i64)],
    marked: Instant,
    wait: Duration,
) -> HandOff {
    let deadline = marked + wait.max(TRUST_WAIT);
    let mut pause = FIRST_PAUSE;
    loop {
        match db::outbox::progress(db, changes).await {
            Ok(Progress::Published) => return HandOff::Published,
            // Another instance waited out the leases since an earlier mark.
            Ok(Progress::TrustEnded) => return HandOff::Stranded,
            Ok(Progress::Pending) => {}
            Err(_) => return HandOff::Failed,
        }
        let now = Instant::now();
        if now >= deadline {
            return match db::outbox::end_trust(db, changes).await {
                Ok(()) => HandOff::Stranded,
                Err(_) => HandOff::Failed,
            };
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}
