//! The recorded history of a stale-check run, and the check of DESIGN's invariants on it.
//!
//! Per product, with times in microseconds since the run started:
//! 1. a read that starts after a write was acknowledged returns that write's version or later;
//! 2. a read that starts after another read returned sees that read's version or later;
//! 3. one version always carries the same stock;
//! 4. no read returns a version that no write produced (above the final version in Postgres).
//!
//! Reads that break 1 or 2 are stale. Those that start inside a fault's repair window (from the
//! fault's start to the repair bound after its end) are counted apart: the design allows them.
//!
//! A write made straight in Postgres (an SQL writer: an ERP sync, an admin in psql) is not
//! acknowledged by shopnow: the design promises it to every read that starts more than the
//! outside bound after its commit. Older reads that start within the bound are counted apart,
//! like the repair windows; so is a read older than another read that returned such a version
//! before it was due (which only a read that bypassed the cache can do).

use std::collections::HashMap;

/// What one operation observed. Failed operations are not recorded as observations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// An acknowledged stock adjustment and the version it produced.
    Write,
    /// A stock change made straight in Postgres (no API), committed, and its version.
    SqlWrite,
    /// A product read.
    Read,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub kind: OpKind,
    pub product: i64,
    pub start_us: u64,
    pub end_us: u64,
    pub version: i64,
    pub stock: i64,
}

/// A time span in which the design allows stale reads (a fault and its repair bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_us: u64,
    pub end_us: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub reads: u64,
    pub writes: u64,
    /// Stale reads outside every repair window.
    pub stale_reads: u64,
    /// Stale reads inside a repair window, allowed by the design.
    pub stale_in_repair_window: u64,
    /// Changes made straight in Postgres.
    pub sql_writes: u64,
    /// Reads older than a direct change committed less than the outside bound before they
    /// started, allowed by the design.
    pub stale_within_outside_bound: u64,
    /// For each of those reads, how long after the change's commit it started, in microseconds:
    /// how long a change made outside the API went unseen.
    pub outside_lags_us: Vec<u64>,
    pub max_staleness_versions: i64,
    pub max_staleness_ms: f64,
    /// Versions seen with two different stocks.
    pub conflicting_versions: u64,
    /// Reads of a version above the final one in Postgres.
    pub phantom_versions: u64,
    /// Every read placed in time, for the report's chart.
    pub timeline: Timeline,
}

/// Why a read returned an older version than the newest one written before it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behind {
    /// Older than an acknowledged write: the guarantee broken.
    Stale,
    /// Stale, but inside a fault's repair window, which the design allows.
    InRepairWindow,
    /// Older than a change made straight in Postgres less than the outside bound before.
    WithinOutsideBound,
}

/// The reads of a run in time: each read that was behind, and how many reads there were.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// (start, how long a newer version had been due when it started, why), in microseconds.
    pub behind: Vec<(u64, u64, Behind)>,
    /// Reads started in each `TIMELINE_TICK_US` of the run.
    pub reads_per_tick: Vec<u32>,
}

/// The time resolution of `Timeline::reads_per_tick`.
pub const TIMELINE_TICK_US: u64 = 100_000;

impl Timeline {
    fn count_read(&mut self, start_us: u64) {
        let tick = (start_us / TIMELINE_TICK_US) as usize;
        if self.reads_per_tick.len() <= tick {
            self.reads_per_tick.resize(tick + 1, 0);
        }
        self.reads_per_tick[tick] += 1;
    }
}

impl Verdict {
    /// Whether the invariants held (stale reads inside repair windows allowed).
    pub fn clean(&self) -> bool {
        self.stale_reads == 0 && self.conflicting_versions == 0 && self.phantom_versions == 0
    }
}

/// What the check is given besides the operations.
pub struct Allowances<'a> {
    /// The repair windows of injected faults.
    pub windows: &'a [Window],
    /// How long after its commit a change made straight in Postgres may still be unseen.
    pub outside_bound_us: u64,
}

/// Checks `ops` against the invariants. `final_versions` holds each product's version in
/// Postgres after the run.
pub fn check(
    ops: &[Op],
    final_versions: &HashMap<i64, i64>,
    allowances: &Allowances<'_>,
) -> Verdict {
    let mut verdict = Verdict::default();
    let mut by_product: HashMap<i64, Vec<&Op>> = HashMap::new();
    for op in ops {
        by_product.entry(op.product).or_default().push(op);
        match op.kind {
            OpKind::Write => verdict.writes += 1,
            OpKind::SqlWrite => verdict.sql_writes += 1,
            OpKind::Read => verdict.reads += 1,
        }
    }
    for (product, ops) in by_product {
        check_product(
            &ops,
            final_versions.get(&product).copied(),
            allowances,
            &mut verdict,
        );
    }
    verdict
}

/// Versions that completed by a given time: the highest version among operations that ended
/// at or before it, and when each new highest first appeared.
struct Frontier {
    /// (end_us, running max version), sorted by end time.
    points: Vec<(u64, i64)>,
}

impl Frontier {
    /// The frontier of versions that became due at the given times.
    fn of(due: impl Iterator<Item = (u64, i64)>) -> Self {
        let mut ends: Vec<(u64, i64)> = due.collect();
        ends.sort_unstable();
        let mut max = i64::MIN;
        let points = ends
            .into_iter()
            .map(|(end, version)| {
                max = max.max(version);
                (end, max)
            })
            .collect();
        Self { points }
    }

    /// The highest version completed strictly before `t`.
    fn max_before(&self, t: u64) -> Option<i64> {
        let n = self.points.partition_point(|&(end, _)| end < t);
        n.checked_sub(1).map(|i| self.points[i].1)
    }

    /// When a version above `version` first completed.
    fn first_above(&self, version: i64) -> Option<u64> {
        let i = self.points.partition_point(|&(_, max)| max <= version);
        self.points.get(i).map(|&(end, _)| end)
    }
}

fn check_product(
    ops: &[&Op],
    final_version: Option<i64>,
    allowances: &Allowances<'_>,
    verdict: &mut Verdict,
) {
    let bound = allowances.outside_bound_us;
    let of_kind = |kind: OpKind| ops.iter().filter(move |op| op.kind == kind);
    let sql_versions: Vec<i64> = of_kind(OpKind::SqlWrite).map(|op| op.version).collect();
    let from_sql = |op: &&&Op| sql_versions.contains(&op.version);
    // Due at once: API writes once acknowledged, and what reads of their versions returned.
    // Due after the outside bound: changes made straight in Postgres, from their commit.
    let strict = [
        Frontier::of(of_kind(OpKind::Write).map(|op| (op.end_us, op.version))),
        Frontier::of(of_kind(OpKind::SqlWrite).map(|op| (op.end_us + bound, op.version))),
        Frontier::of(
            of_kind(OpKind::Read)
                .filter(|op| !from_sql(op))
                .map(|op| (op.end_us, op.version)),
        ),
    ];
    // Committed or seen, but not yet due: a read older than these is allowed, counted apart.
    let lenient = [
        Frontier::of(of_kind(OpKind::SqlWrite).map(|op| (op.end_us, op.version))),
        Frontier::of(
            of_kind(OpKind::Read)
                .filter(|op| from_sql(op))
                .map(|op| (op.end_us, op.version)),
        ),
    ];

    let mut stock_of: HashMap<i64, i64> = HashMap::new();
    let mut conflicting: Vec<i64> = Vec::new();
    for op in ops {
        let stock = *stock_of.entry(op.version).or_insert(op.stock);
        if stock != op.stock && !conflicting.contains(&op.version) {
            conflicting.push(op.version);
        }
    }
    verdict.conflicting_versions += conflicting.len() as u64;

    for read in of_kind(OpKind::Read) {
        verdict.timeline.count_read(read.start_us);
        if final_version.is_some_and(|last| read.version > last) {
            verdict.phantom_versions += 1;
        }
        // The newest version this read must see.
        let mut staleness: Option<(i64, u64)> = None;
        for frontier in &strict {
            let Some(required) = frontier.max_before(read.start_us) else {
                continue;
            };
            if read.version < required {
                let since = frontier.first_above(read.version).unwrap_or(read.start_us);
                let lag = (required - read.version, read.start_us.saturating_sub(since));
                staleness = Some(staleness.map_or(lag, |s| s.max(lag)));
            }
        }
        let Some((versions, lag_us)) = staleness else {
            // Behind a change committed (or seen) less than the bound ago: since when?
            let behind_since = lenient
                .iter()
                .filter(|frontier| {
                    frontier
                        .max_before(read.start_us)
                        .is_some_and(|newer| read.version < newer)
                })
                .filter_map(|frontier| frontier.first_above(read.version))
                .min();
            if let Some(since) = behind_since {
                let lag_us = read.start_us.saturating_sub(since);
                verdict.stale_within_outside_bound += 1;
                verdict.outside_lags_us.push(lag_us);
                verdict
                    .timeline
                    .behind
                    .push((read.start_us, lag_us, Behind::WithinOutsideBound));
            }
            continue;
        };
        let in_window = allowances
            .windows
            .iter()
            .any(|w| (w.start_us..=w.end_us).contains(&read.start_us));
        if in_window {
            verdict.stale_in_repair_window += 1;
            verdict
                .timeline
                .behind
                .push((read.start_us, lag_us, Behind::InRepairWindow));
            continue;
        }
        verdict.stale_reads += 1;
        verdict
            .timeline
            .behind
            .push((read.start_us, lag_us, Behind::Stale));
        verdict.max_staleness_versions = verdict.max_staleness_versions.max(versions);
        verdict.max_staleness_ms = verdict.max_staleness_ms.max(lag_us as f64 / 1000.0);
    }
}

/// How often a run hit the window of a delayed publish: a write whose publish was stalled at
/// least `delay` (it took that long), while another write of the same product with a newer
/// version was acknowledged and then every copy was dropped (at a time in `key_drops`) before
/// the stalled write finished. A publish that wrote into the empty key there would have brought
/// the older version back.
pub fn delayed_publish_hits(ops: &[Op], key_drops: &[u64], delay_us: u64) -> u64 {
    let mut drops = key_drops.to_vec();
    drops.sort_unstable();
    let dropped_between = |after: u64, before: u64| {
        let first = drops.partition_point(|&t| t <= after);
        drops.get(first).is_some_and(|&t| t < before)
    };
    let writes: Vec<&Op> = ops.iter().filter(|op| op.kind == OpKind::Write).collect();
    writes
        .iter()
        .filter(|stalled| stalled.end_us - stalled.start_us >= delay_us)
        .filter(|stalled| {
            writes.iter().any(|newer| {
                newer.product == stalled.product
                    && newer.version > stalled.version
                    && newer.end_us < stalled.end_us
                    && dropped_between(newer.end_us, stalled.end_us)
            })
        })
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(start: u64, end: u64, version: i64, stock: i64) -> Op {
        Op {
            kind: OpKind::Write,
            product: 1,
            start_us: start,
            end_us: end,
            version,
            stock,
        }
    }

    fn read(start: u64, end: u64, version: i64, stock: i64) -> Op {
        Op {
            kind: OpKind::Read,
            product: 1,
            start_us: start,
            end_us: end,
            version,
            stock,
        }
    }

    fn finals(version: i64) -> HashMap<i64, i64> {
        HashMap::from([(1, version)])
    }

    const NO_WINDOWS: Allowances<'static> = Allowances {
        windows: &[],
        outside_bound_us: 1_000_000,
    };

    fn sql_write(start: u64, end: u64, version: i64, stock: i64) -> Op {
        Op {
            kind: OpKind::SqlWrite,
            ..write(start, end, version, stock)
        }
    }

    #[test]
    fn a_clean_history_passes() {
        let ops = [
            read(0, 5, 1, 10),
            write(10, 20, 2, 9),
            read(15, 18, 1, 10), // concurrent with the write: either version is fine
            read(21, 25, 2, 9),
            write(30, 40, 3, 8),
            read(41, 45, 3, 8),
        ];
        let verdict = check(&ops, &finals(3), &NO_WINDOWS);
        assert!(verdict.clean(), "{verdict:?}");
        assert_eq!((verdict.reads, verdict.writes), (4, 2));
    }

    #[test]
    fn a_read_older_than_an_acknowledged_write_is_stale() {
        let ops = [
            write(10, 20, 2, 9),
            write(30, 40, 3, 8),
            read(1_040, 1_050, 1, 10),
        ];
        let verdict = check(&ops, &finals(3), &NO_WINDOWS);
        assert_eq!(verdict.stale_reads, 1);
        assert_eq!(verdict.max_staleness_versions, 2);
        // Stale since version 2 was acknowledged at 20 us: 1.02 ms before the read started.
        assert!(
            (verdict.max_staleness_ms - 1.02).abs() < 1e-9,
            "{verdict:?}"
        );
        assert!(!verdict.clean()); // The chart's data: the read, when it started and how far behind it was.
        assert_eq!(verdict.timeline.behind, vec![(1_040, 1_020, Behind::Stale)]);
        assert_eq!(verdict.timeline.reads_per_tick, vec![1]);
    }

    #[test]
    fn a_read_older_than_an_earlier_read_is_non_monotonic() {
        let ops = [read(0, 10, 5, 1), read(20, 30, 4, 2)];
        let verdict = check(&ops, &finals(5), &NO_WINDOWS);
        assert_eq!(verdict.stale_reads, 1);
        assert_eq!(verdict.max_staleness_versions, 1);
    }

    #[test]
    fn one_version_with_two_stocks_is_caught() {
        let ops = [write(0, 10, 2, 9), read(20, 30, 2, 7)];
        let verdict = check(&ops, &finals(2), &NO_WINDOWS);
        assert_eq!(verdict.conflicting_versions, 1);
        assert!(!verdict.clean());
    }

    #[test]
    fn a_version_no_write_produced_is_caught() {
        let verdict = check(&[read(0, 10, 9, 1)], &finals(3), &NO_WINDOWS);
        assert_eq!(verdict.phantom_versions, 1);
        assert!(!verdict.clean());
    }

    #[test]
    fn stale_reads_inside_a_repair_window_are_counted_apart() {
        let ops = [
            write(0, 10, 2, 9),
            read(500, 510, 1, 10),
            read(5_000, 5_010, 1, 10),
        ];
        let windows = [Window {
            start_us: 400,
            end_us: 1_000,
        }];
        let allowances = Allowances {
            windows: &windows,
            ..NO_WINDOWS
        };
        let verdict = check(&ops, &finals(2), &allowances);
        assert_eq!(verdict.stale_in_repair_window, 1);
        assert_eq!(verdict.stale_reads, 1);
    }

    #[test]
    fn a_delayed_publish_counts_when_a_newer_write_and_a_key_drop_fell_inside_its_delay() {
        let stalled = write(0, 400, 2, 9);
        let newer = write(100, 150, 3, 8);
        let ops = [stalled, newer];
        assert_eq!(delayed_publish_hits(&ops, &[200], 300), 1);
        // The drop came before the newer write was acknowledged: its publish found no copy, so
        // nothing was stored that the stalled publish could have been compared against either.
        assert_eq!(delayed_publish_hits(&ops, &[120], 300), 0);
        // The drop came after the stalled write finished.
        assert_eq!(delayed_publish_hits(&ops, &[500], 300), 0);
        // The write was not stalled long enough to be a delayed one.
        assert_eq!(delayed_publish_hits(&ops, &[200], 500), 0);
    }

    #[test]
    fn a_direct_change_is_due_after_the_outside_bound() {
        let ops = [
            sql_write(0, 10, 2, 9),
            read(500_000, 500_100, 1, 10), // within the bound: allowed, counted apart
            read(600_000, 600_100, 2, 9),  // the change, seen early
            read(900_000, 900_100, 1, 10), // older than a read before it, still within bound
            read(1_100_000, 1_100_100, 1, 10), // past the bound: stale
        ];
        let verdict = check(&ops, &finals(2), &NO_WINDOWS);
        assert_eq!(verdict.sql_writes, 1);
        assert_eq!(verdict.stale_within_outside_bound, 2);
        assert_eq!(verdict.stale_reads, 1);
        // Stale since the change was due, 1 s after its commit at 10 us: 99.99 ms before.
        assert!(
            (verdict.max_staleness_ms - 99.99).abs() < 1e-9,
            "{verdict:?}"
        );
    }

    #[test]
    fn products_are_checked_independently() {
        let mut other = read(100, 110, 1, 10);
        other.product = 2;
        let ops = [write(0, 10, 5, 1), other];
        let verdict = check(&ops, &HashMap::from([(1, 5), (2, 1)]), &NO_WINDOWS);
        assert!(verdict.clean(), "{verdict:?}");
    }
}
