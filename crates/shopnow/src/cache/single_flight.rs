//! One Postgres read per product at a time per instance.
//!
//! The first reader to miss leads: it reads Postgres and fills the cache. Readers that miss
//! while it works follow: they wait until it is done, then read the cache again. They do not
//! take the leader's row: it may have been read before they started, and a reader must never
//! see a version older than a write acknowledged before it started.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use tokio::sync::watch;

#[derive(Default)]
pub(super) struct SingleFlight {
    /// product id -> a receiver that closes when that product's leader is done
    leaders: Mutex<HashMap<i64, watch::Receiver<()>>>,
    /// Flights finished so far, on any product.
    finished: AtomicU64,
}

pub(super) enum Turn<'a> {
    /// Read Postgres and fill; dropping the guard releases the followers.
    Lead(LeaderGuard<'a>),
    /// Another reader is filling; `wait` for it, then read the cache again.
    Follow(Follower),
}

pub(super) struct LeaderGuard<'a> {
    flights: &'a SingleFlight,
    id: i64,
    _done: watch::Sender<()>,
}

pub(super) struct Follower(watch::Receiver<()>);

impl SingleFlight {
    /// A mark to pass to `finished_since` later.
    pub(super) fn mark(&self) -> u64 {
        self.finished.load(Ordering::Acquire)
    }

    /// Whether a flight finished after `mark` was taken. A reader whose cache lookup missed
    /// and that then leads checks this: a leader that finished in between may have filled the
    /// cache, and one more cache lookup is cheaper than a Postgres read.
    pub(super) fn finished_since(&self, mark: u64) -> bool {
        self.mark() != mark
    }

    pub(super) fn join(&self, id: i64) -> Turn<'_> {
        let mut leaders = self.leaders.lock().expect("single-flight map poisoned");
        if let Some(leader) = leaders.get(&id) {
            return Turn::Follow(Follower(leader.clone()));
        }
        let (done, receiver) = watch::channel(());
        leaders.insert(id, receiver);
        Turn::Lead(LeaderGuard {
            flights: self,
            id,
            _done: done,
        })
    }
}

impl Follower {
    /// Resolves when the leader is done, whether it succeeded, failed or was cancelled.
    pub(super) async fn wait(mut self) {
        // The sender never sends; `changed` returns when it is dropped.
        while self.0.changed().await.is_ok() {}
    }
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        // Remove first, so no new follower joins a leader that is finishing; the sender drops
        // right after this, which wakes the followers already waiting.
        self.flights
            .leaders
            .lock()
            .expect("single-flight map poisoned")
            .remove(&self.id);
        self.flights.finished.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_wait_for_the_leader_and_the_next_reader_leads_again() {
        let flights = SingleFlight::default();
        let Turn::Lead(leader) = flights.join(1) else {
            panic!("first reader leads")
        };
        let Turn::Follow(follower) = flights.join(1) else {
            panic!("second reader follows")
        };
        assert!(
            matches!(flights.join(2), Turn::Lead(_)),
            "other products are independent"
        );

        let waiting = tokio::spawn(follower.wait());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(leader);
        waiting.await.unwrap();
        assert!(matches!(flights.join(1), Turn::Lead(_)));
    }

    #[test]
    fn a_finished_flight_is_seen_by_a_mark_taken_before_it() {
        let flights = SingleFlight::default();
        let mark = flights.mark();
        assert!(!flights.finished_since(mark));
        drop(flights.join(5));
        assert!(flights.finished_since(mark));
    }
}
