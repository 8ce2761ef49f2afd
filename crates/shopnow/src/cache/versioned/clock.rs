//! The database's clock, as an instance estimates it: what a cached copy's holds are judged by
//! when the copy is served.
//!
//! A hold expires at a time the database set (`now() + ttl`), and every statement that checks
//! availability judges it by the database's clock. An instance serving a copy judges it by its
//! own clock plus an offset, measured every `history::WATCH_INTERVAL` by the same query that
//! reads the database's history: the database's `clock_timestamp()` against the middle of the
//! round trip. The error of a sample is at most half its round trip, so the offset kept is the
//! one of the fastest round trip among the last `SAMPLES` (a slow one, under load, is noise).
//!
//! So a read judges a hold by the database's time give or take `error_ms()`: under a
//! millisecond between machines of one network, 0 on one machine. Until the first sample the
//! offset is 0: the clocks of the machines are taken to agree.

use std::{
    collections::VecDeque,
    sync::atomic::{AtomicI64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

/// Samples the offset is chosen among: 8 s of them at one per watch interval.
const SAMPLES: usize = 16;

#[derive(Default)]
pub(crate) struct DatabaseClock {
    offset_ms: AtomicI64,
    /// Half the round trip of the sample the offset came from (also the gauge
    /// `cache_database_clock_error_ms`).
    error_ms: AtomicI64,
}

impl DatabaseClock {
    /// The database's time now, as estimated here, in ms since the epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        local_ms() + self.offset_ms.load(Ordering::Relaxed)
    }
}

/// The watch's side: keeps the recent samples and sets the offset of the best one.
#[derive(Default)]
pub(crate) struct ClockSamples(VecDeque<Sample>);

#[derive(Clone, Copy)]
struct Sample {
    offset_ms: i64,
    round_trip_ms: i64,
}

impl ClockSamples {
    /// Records that the database said `database_ms` between `sent_ms` and `received_ms` (this
    /// machine's clock), and updates `clock` with the best recent sample.
    pub(crate) fn record(
        &mut self,
        clock: &DatabaseClock,
        sent_ms: i64,
        database_ms: i64,
        received_ms: i64,
    ) {
        if self.0.len() == SAMPLES {
            self.0.pop_front();
        }
        self.0.push_back(Sample {
            offset_ms: database_ms - (sent_ms + received_ms) / 2,
            round_trip_ms: received_ms - sent_ms,
        });
        let best = self
            .0
            .iter()
            .min_by_key(|sample| sample.round_trip_ms)
            .copied()
            .expect("just pushed");
        clock.offset_ms.store(best.offset_ms, Ordering::Relaxed);
        let error = (best.round_trip_ms + 1) / 2;
        clock.error_ms.store(error, Ordering::Relaxed);
        metrics::gauge!("cache_database_clock_offset_ms").set(best.offset_ms as f64);
        metrics::gauge!("cache_database_clock_error_ms").set(error as f64);
    }
}

/// This machine's time in ms since the epoch.
pub(crate) fn local_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_of_the_fastest_round_trip_is_kept() {
        let clock = DatabaseClock::default();
        let mut samples = ClockSamples::default();
        samples.record(&clock, 1_000, 1_505, 1_010);
        assert_eq!(
            (
                clock.offset_ms.load(Ordering::Relaxed),
                clock.error_ms.load(Ordering::Relaxed)
            ),
            (500, 5)
        );
        // A slow round trip says little: the fast one stays.
        samples.record(&clock, 2_000, 2_900, 2_200);
        assert_eq!(clock.offset_ms.load(Ordering::Relaxed), 500);
        samples.record(&clock, 3_000, 3_502, 3_002);
        assert_eq!(
            (
                clock.offset_ms.load(Ordering::Relaxed),
                clock.error_ms.load(Ordering::Relaxed)
            ),
            (501, 1)
        );
        // Once it is older than every kept sample, a slower one takes over.
        for n in 0..SAMPLES as i64 {
            samples.record(
                &clock,
                10_000 + n * 100,
                10_000 + n * 100 + 7 + 250,
                10_000 + n * 100 + 14,
            );
        }
        assert_eq!(
            (
                clock.offset_ms.load(Ordering::Relaxed),
                clock.error_ms.load(Ordering::Relaxed)
            ),
            (250, 7)
        );
    }
}
