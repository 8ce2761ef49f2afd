//! The stale check's report: a terminal table and a JSON document (the SVG chart is `chart`).

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use crate::{
    history::{Timeline, Verdict, Window},
    reservations::HoldVerdict,
};

/// One strategy's run, as `--json` writes it.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub strategy: String,
    pub instances: usize,
    pub reads: u64,
    pub writes: u64,
    pub failed_requests: u64,
    /// Failed requests by cause: an HTTP status, or `transport` (no answer).
    pub failures: BTreeMap<String, u64>,
    /// Whether the invariants held (`history::Verdict::clean`).
    pub clean: bool,
    pub stale_reads: u64,
    pub stale_share: f64,
    pub stale_in_repair_window: u64,
    /// Changes made straight in Postgres (`--sql-writers`).
    pub sql_writes: u64,
    /// Reads older than such a change committed less than the outside bound before them.
    pub stale_within_outside_bound: u64,
    /// How long after its commit such a change was still unseen by a read: p99 and worst.
    pub outside_lag_p99_ms: f64,
    pub outside_lag_max_ms: f64,
    pub max_staleness_versions: i64,
    pub max_staleness_ms: f64,
    pub conflicting_versions: u64,
    pub phantom_versions: u64,
    pub read_p50_ms: f64,
    pub read_p99_ms: f64,
    pub reads_per_s: f64,
    pub duration_s: f64,
    pub faults: Vec<String>,
    /// Under `delayed-publish`: stalled publishes that outlived a newer acknowledged write and
    /// a drop of its copy (`history::delayed_publish_hits`).
    pub delayed_publish_hits: u64,
    /// What reads of the held products showed against what the holders did
    /// (`reservations::check`).
    pub holds: HoldVerdict,
    /// What the category pages showed (`pages`).
    pub pages: PageReport,
    /// The wall clock when the run started (ms since the epoch), and when each stale read
    /// outside the windows started (ms since then): for a caller that injected faults of its
    /// own (`scripts/containers check`) to place them against.
    pub started_at_unix_ms: i64,
    pub stale_read_starts_ms: Vec<u64>,
    /// Every fault injected, and when (ms since the run's origin, as the reads' starts).
    pub injections: Vec<crate::inject::Injection>,
    /// Every read in time, for the chart (not in the JSON: hundreds of thousands of entries).
    #[serde(skip)]
    pub timeline: Timeline,
    /// The faults' repair windows, for the chart.
    #[serde(skip)]
    pub fault_windows: Vec<Window>,
}

impl Run {
    pub fn new(
        strategy: String,
        instances: usize,
        verdict: &Verdict,
        failures: BTreeMap<String, u64>,
        read_latencies_us: Vec<u64>,
        duration_s: f64,
        faults: Vec<String>,
    ) -> Self {
        let percentile = |p: f64| percentile_ms(&read_latencies_us, p);
        Self {
            strategy,
            instances,
            reads: verdict.reads,
            writes: verdict.writes,
            failed_requests: failures.values().sum(),
            failures,
            clean: verdict.clean(),
            stale_reads: verdict.stale_reads,
            stale_share: if verdict.reads == 0 {
                0.0
            } else {
                verdict.stale_reads as f64 / verdict.reads as f64
            },
            stale_in_repair_window: verdict.stale_in_repair_window,
            sql_writes: verdict.sql_writes,
            stale_within_outside_bound: verdict.stale_within_outside_bound,
            outside_lag_p99_ms: percentile_ms(&verdict.outside_lags_us, 0.99),
            outside_lag_max_ms: verdict.outside_lags_us.iter().max().copied().unwrap_or(0) as f64
                / 1000.0,
            max_staleness_versions: verdict.max_staleness_versions,
            max_staleness_ms: verdict.max_staleness_ms,
            conflicting_versions: verdict.conflicting_versions,
            phantom_versions: verdict.phantom_versions,
            read_p50_ms: percentile(0.50),
            read_p99_ms: percentile(0.99),
            reads_per_s: if duration_s > 0.0 {
                verdict.reads as f64 / duration_s
            } else {
                0.0
            },
            duration_s,
            faults,
            delayed_publish_hits: 0,
            holds: HoldVerdict::default(),
            pages: PageReport::default(),
            started_at_unix_ms: 0,
            injections: Vec::new(),
            stale_read_starts_ms: verdict
                .timeline
                .behind
                .iter()
                .filter(|(_, _, why)| *why == crate::history::Behind::Stale)
                .map(|(start_us, _, _)| start_us / 1000)
                .collect(),
            timeline: verdict.timeline.clone(),
            fault_windows: Vec::new(),
        }
    }
}

/// Category pages read in a run: how many, their items as reads of their products (stale ones
/// outside and inside repair windows), and pages whose membership, filters or order were
/// wrong, with the first few.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PageReport {
    pub pages: u64,
    pub item_reads: u64,
    pub stale_item_reads: u64,
    pub stale_in_repair_window: u64,
    /// Products whose place on or off the price-range page was known when it was read
    /// (`pages::check_ranges`), summed over its reads.
    pub range_checks: u64,
    pub violations: u64,
    pub examples: Vec<String>,
}

/// The `p` quantile of microsecond samples, in milliseconds (0 when there are none).
fn percentile_ms(samples_us: &[u64], p: f64) -> f64 {
    if samples_us.is_empty() {
        return 0.0;
    }
    let mut sorted = samples_us.to_vec();
    sorted.sort_unstable();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub command: String,
    pub runs: Vec<Run>,
}

/// The terminal table.
pub fn table(runs: &[Run]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:>9} {:>7} {:>8} {:>7} {:>10} {:>12} {:>11} {:>9} {:>9} {:>9} {:>7}",
        "strategy",
        "reads",
        "writes",
        "stale",
        "stale%",
        "in-window",
        "worst(vers)",
        "worst(ms)",
        "p50(ms)",
        "p99(ms)",
        "reads/s",
        "failed"
    );
    for run in runs {
        let _ = writeln!(
            out,
            "{:<10} {:>9} {:>7} {:>8} {:>6.2}% {:>10} {:>12} {:>11.1} {:>9.2} {:>9.2} {:>9.0} {:>7}",
            run.strategy,
            run.reads,
            run.writes,
            run.stale_reads,
            run.stale_share * 100.0,
            run.stale_in_repair_window,
            run.max_staleness_versions,
            run.max_staleness_ms,
            run.read_p50_ms,
            run.read_p99_ms,
            run.reads_per_s,
            run.failed_requests,
        );
        if !run.failures.is_empty() {
            let causes: Vec<String> = run
                .failures
                .iter()
                .map(|(cause, n)| format!("{cause}: {n}"))
                .collect();
            let _ = writeln!(
                out,
                "{:<10} failed requests by cause: {}",
                "",
                causes.join(", ")
            );
        }
        if run.sql_writes > 0 {
            let _ = writeln!(
                out,
                "{:<10} {} changes made straight in Postgres; {} reads did not see one yet, at most {:.1} ms after its commit (p99 {:.1} ms)",
                "", run.sql_writes, run.stale_within_outside_bound, run.outside_lag_max_ms, run.outside_lag_p99_ms
            );
        }
        if run.delayed_publish_hits > 0 {
            let _ = writeln!(
                out,
                "{:<10} delayed publishes that outlived a newer acknowledged write and a drop of its copy: {}",
                "", run.delayed_publish_hits
            );
        }
        if run.holds.reads > 0 {
            let h = &run.holds;
            let _ = writeln!(
                out,
                "{:<10} holds: {} reads of held products, {} holds, {} orders from holds, {} cancelled; \
                 {} counted a hold past its end, {} missed a live hold, {} missed a cancellation, \
                 {} missed an order, {} oversold; {} in repair windows",
                "", h.reads, h.holds, h.orders, h.cancellations, h.counted_past_end,
                h.missed_holds, h.missed_cancellations, h.missed_orders, h.oversold,
                h.in_repair_window
            );
        }
        if run.pages.pages > 0 {
            let p = &run.pages;
            let _ =
                writeln!(
                out,
                "{:<10} pages: {} page reads, {} items; {} stale items ({} in repair windows); \
                 {} products' place on or off the price range checked; {} pages with wrong \
                 membership, filters or order",
                "", p.pages, p.item_reads, p.stale_item_reads, p.stale_in_repair_window,
                p.range_checks, p.violations
            );
            for example in &p.examples {
                let _ = writeln!(out, "{:<10}   {example}", "");
            }
        }
        if run.conflicting_versions + run.phantom_versions > 0 {
            let _ = writeln!(
                out,
                "{:<10} !! {} versions with two stocks, {} reads of versions no write produced",
                "", run.conflicting_versions, run.phantom_versions
            );
        }
    }
    let faults: Vec<&String> = runs.iter().flat_map(|r| &r.faults).collect();
    if !faults.is_empty() {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for fault in faults {
            match counts.iter_mut().find(|(name, _)| name == fault) {
                Some((_, n)) => *n += 1,
                None => counts.push((fault.clone(), 1)),
            }
        }
        let list: Vec<String> = counts
            .iter()
            .map(|(name, n)| format!("{name} x{n}"))
            .collect();
        let _ = writeln!(out, "faults injected: {}", list.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(strategy: &str, stale: u64) -> Run {
        let verdict = Verdict {
            reads: 100,
            writes: 10,
            stale_reads: stale,
            ..Default::default()
        };
        Run::new(
            strategy.into(),
            2,
            &verdict,
            BTreeMap::from([("502".to_string(), 3)]),
            (1..=100).map(|n| n * 1000).collect(),
            2.0,
            vec![],
        )
    }

    #[test]
    fn percentiles_and_shares() {
        let r = run("ttl", 25);
        assert_eq!(r.read_p50_ms, 50.0);
        assert_eq!(r.read_p99_ms, 99.0);
        assert_eq!(r.stale_share, 0.25);
        assert_eq!(r.reads_per_s, 50.0);
        assert_eq!(r.failed_requests, 3);
    }

    #[test]
    fn the_table_names_every_strategy() {
        let runs = [run("ttl", 25), run("versioned", 0)];
        let table = table(&runs);
        assert!(table.contains("ttl") && table.contains("versioned") && table.contains("25.00%"));
    }
}
