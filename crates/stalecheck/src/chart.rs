//! The report's picture, hand-written SVG: one timeline per strategy (x: time into the run;
//! y: how far behind the newest due version each read was, log scale; fault windows shaded;
//! stale reads in red), then the read latencies as bars, each part with its legend.
//!
//! A run has hundreds of thousands of reads, so the timeline draws per column of pixels: a
//! grey bar at the bottom for the reads that were not behind (its height: how many), and for
//! each kind of read that was behind, a line from the least to the most behind, with a dot at
//! the most. A single stale read among 300,000 still shows as a red dot.

use std::fmt::Write as _;

use crate::{
    history::{Behind, TIMELINE_TICK_US},
    report::Run,
};

const WIDTH: f64 = 960.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 24.0;
const PLOT_WIDTH: f64 = WIDTH - LEFT - RIGHT;
/// Height of one strategy's timeline: its title, the log-scale plot, the band of fresh reads.
const PANEL: f64 = 178.0;
const TITLE: f64 = 22.0;
const PLOT_HEIGHT: f64 = 120.0;
const FRESH_BAND: f64 = 16.0;
/// Pixels per column of the timeline.
const COLUMN: f64 = 2.0;
const LEGEND: f64 = 56.0;
const LATENCY: f64 = 230.0;

const STALE: &str = "#d62728";
const IN_WINDOW: &str = "#ff7f0e";
const OUTSIDE: &str = "#9467bd";
const FRESH: &str = "#b0b0b0";
const FAULT: &str = "#fdd0a2";
const P50: &str = "#1f77b4";
const P99: &str = "#aec7e8";

fn colour(behind: Behind) -> &'static str {
    match behind {
        Behind::Stale => STALE,
        Behind::InRepairWindow => IN_WINDOW,
        Behind::WithinOutsideBound => OUTSIDE,
    }
}

/// The chart of `runs`, as an SVG document.
pub fn svg(runs: &[Run]) -> String {
    let height = LEGEND + PANEL * runs.len() as f64 + LATENCY;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    legend(&mut out);
    let duration_s = runs.iter().map(|r| r.duration_s).fold(1.0_f64, f64::max);
    let most_behind_ms = runs
        .iter()
        .flat_map(|r| {
            r.timeline
                .behind
                .iter()
                .map(|&(_, lag, _)| lag as f64 / 1000.0)
        })
        .fold(1_000.0_f64, f64::max);
    let axis = LogAxis::up_to(most_behind_ms);
    for (n, run) in runs.iter().enumerate() {
        timeline(&mut out, run, LEGEND + PANEL * n as f64, duration_s, &axis);
    }
    latency_bars(&mut out, runs, LEGEND + PANEL * runs.len() as f64);
    let _ = writeln!(out, "</svg>");
    out
}

fn legend(out: &mut String) {
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="18" font-weight="bold" font-size="14">How far behind the newest acknowledged write each read was, over the run</text>"#
    );
    let entries: [(&str, &str, bool); 5] = [
        (STALE, "stale: older than an acknowledged write", false),
        (IN_WINDOW, "in a fault's repair window (allowed)", false),
        (
            OUTSIDE,
            "behind a direct SQL change, within the bound (allowed)",
            false,
        ),
        (FAULT, "fault, until its repair bound", true),
        (FRESH, "reads not behind (bar height: how many)", true),
    ];
    let mut x = LEFT;
    for (n, (fill, label, area)) in entries.into_iter().enumerate() {
        let y = if n < 3 { 36.0 } else { 52.0 };
        if n == 3 {
            x = LEFT;
        }
        if area {
            let _ = writeln!(
                out,
                r#"<rect x="{x}" y="{}" width="14" height="10" fill="{fill}"/>"#,
                y - 9.0
            );
        } else {
            let _ = writeln!(
                out,
                r#"<circle cx="{}" cy="{}" r="4" fill="{fill}"/>"#,
                x + 7.0,
                y - 4.0
            );
        }
        let _ = writeln!(out, r#"<text x="{}" y="{y}">{label}</text>"#, x + 20.0);
        x += 24.0 + label.len() as f64 * 6.3;
    }
}

/// A log scale in milliseconds, from 0.1 ms to the decade above the most behind read.
struct LogAxis {
    low: f64,
    high: f64,
}

impl LogAxis {
    fn up_to(most_ms: f64) -> Self {
        Self {
            low: 0.1,
            high: 10f64.powf(most_ms.log10().ceil()),
        }
    }

    /// Pixels above the plot's bottom for `ms` (clamped into the axis).
    fn y(&self, ms: f64) -> f64 {
        let ms = ms.clamp(self.low, self.high);
        PLOT_HEIGHT * (ms / self.low).log10() / (self.high / self.low).log10()
    }

    fn decades(&self) -> impl Iterator<Item = f64> + '_ {
        let mut decade = self.low;
        std::iter::from_fn(move || {
            (decade <= self.high * 1.0001).then(|| {
                let current = decade;
                decade *= 10.0;
                current
            })
        })
    }
}

fn milliseconds_label(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{} s", ms / 1000.0)
    } else {
        format!("{ms} ms")
    }
}

/// A horizontal grid line across the plot at `y`, labelled on the left.
fn grid_line(out: &mut String, y: f64, label: &str) {
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#e5e5e5\"/>",
        LEFT + PLOT_WIDTH
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{:.1}" text-anchor="end" font-size="10">{label}</text>"#,
        LEFT - 6.0,
        y + 3.0
    );
}

fn timeline(out: &mut String, run: &Run, top: f64, duration_s: f64, axis: &LogAxis) {
    let plot_top = top + TITLE;
    let plot_bottom = plot_top + PLOT_HEIGHT;
    let band_bottom = plot_bottom + FRESH_BAND;
    let x_of = |us: f64| LEFT + PLOT_WIDTH * (us / 1e6 / duration_s).min(1.0);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{}"><tspan font-weight="bold">{}</tspan>: {} stale of {} reads ({:.2}%), {} in repair windows; worst {:.1} ms behind</text>"#,
        top + 14.0,
        run.strategy,
        run.stale_reads,
        run.reads,
        run.stale_share * 100.0,
        run.stale_in_repair_window,
        run.max_staleness_ms
    );
    // Fault windows, under everything else.
    for window in &run.fault_windows {
        let x = x_of(window.start_us as f64);
        let width = (x_of(window.end_us as f64) - x).max(1.0);
        let _ = writeln!(
            out,
            r#"<rect x="{x:.1}" y="{plot_top}" width="{width:.1}" height="{}" fill="{FAULT}" opacity="0.7"/>"#,
            PLOT_HEIGHT + FRESH_BAND
        );
    }
    // The y axis: decades, with grid lines.
    for decade in axis.decades() {
        grid_line(
            out,
            plot_bottom - axis.y(decade),
            &milliseconds_label(decade),
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{:.1}" text-anchor="end" font-size="10">not behind</text>"#,
        LEFT - 6.0,
        band_bottom - 4.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle" font-size="10">behind by (log)</text>"#,
        plot_top + PLOT_HEIGHT / 2.0
    );
    // Reads not behind: a grey bar per tick of the recorded counts.
    let mut fresh: Vec<u64> = run
        .timeline
        .reads_per_tick
        .iter()
        .map(|&reads| u64::from(reads))
        .collect();
    for &(start, _, _) in &run.timeline.behind {
        if let Some(reads) = fresh.get_mut((start / TIMELINE_TICK_US) as usize) {
            *reads = reads.saturating_sub(1);
        }
    }
    let most = fresh.iter().copied().max().unwrap_or(0).max(1) as f64;
    for (tick, &reads) in fresh.iter().enumerate() {
        if reads == 0 {
            continue;
        }
        let x = x_of((tick as u64 * TIMELINE_TICK_US) as f64);
        let width = x_of(((tick as u64 + 1) * TIMELINE_TICK_US) as f64) - x;
        let height = (FRESH_BAND - 2.0) * reads as f64 / most;
        let _ = writeln!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="{width:.1}" height="{height:.1}" fill="{FRESH}"/>"#,
            band_bottom - height
        );
    }
    let columns = (PLOT_WIDTH / COLUMN) as usize;
    let column_of =
        |us: u64| ((x_of(us as f64) - LEFT) / COLUMN).min(columns as f64 - 1.0) as usize;
    // Reads behind: per column and kind, the least to the most behind.
    for kind in [
        Behind::WithinOutsideBound,
        Behind::InRepairWindow,
        Behind::Stale,
    ] {
        let mut spans: Vec<Option<(f64, f64)>> = vec![None; columns];
        for &(start, lag_us, _) in run.timeline.behind.iter().filter(|b| b.2 == kind) {
            let ms = lag_us as f64 / 1000.0;
            let span = &mut spans[column_of(start)];
            *span = Some(span.map_or((ms, ms), |(low, high)| (low.min(ms), high.max(ms))));
        }
        let fill = colour(kind);
        for (column, span) in spans.iter().enumerate() {
            let Some((low, high)) = span else {
                continue;
            };
            let x = LEFT + column as f64 * COLUMN + COLUMN / 2.0;
            let (y_low, y_high) = (plot_bottom - axis.y(*low), plot_bottom - axis.y(*high));
            if y_low - y_high > 1.0 {
                let _ = writeln!(
                    out,
                    r#"<line x1="{x:.1}" y1="{y_low:.1}" x2="{x:.1}" y2="{y_high:.1}" stroke="{fill}" stroke-width="1.5" opacity="0.6"/>"#
                );
            }
            let _ = writeln!(
                out,
                r#"<circle cx="{x:.1}" cy="{y_high:.1}" r="2" fill="{fill}"/>"#
            );
        }
    }
    // The x axis: seconds into the run.
    let _ = writeln!(
        out,
        r#"<line x1="{LEFT}" y1="{band_bottom}" x2="{}" y2="{band_bottom}" stroke="black"/>"#,
        LEFT + PLOT_WIDTH
    );
    let _ = writeln!(
        out,
        r#"<line x1="{LEFT}" y1="{plot_top}" x2="{LEFT}" y2="{band_bottom}" stroke="black"/>"#
    );
    let step = [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0]
        .into_iter()
        .find(|step| duration_s / step <= 12.0)
        .unwrap_or(600.0);
    let mut second = 0.0;
    while second <= duration_s + 1e-9 {
        let x = x_of(second * 1e6);
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{band_bottom}" x2="{x:.1}" y2="{}" stroke="black"/>"#,
            band_bottom + 4.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle" font-size="10">{second} s</text>"#,
            band_bottom + 15.0
        );
        second += step;
    }
}

fn latency_bars(out: &mut String, runs: &[Run], top: f64) {
    let plot_top = top + 48.0;
    let plot_height = 130.0;
    let plot_bottom = plot_top + plot_height;
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{}" font-weight="bold" font-size="14">Read latency per strategy, over HTTP</text>"#,
        top + 18.0
    );
    for (n, (fill, label)) in [(P50, "p50"), (P99, "p99")].into_iter().enumerate() {
        let x = LEFT + n as f64 * 70.0;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{}" width="14" height="10" fill="{fill}"/><text x="{}" y="{}">{label}</text>"#,
            top + 27.0,
            x + 20.0,
            top + 36.0
        );
    }
    let most = runs
        .iter()
        .map(|r| r.read_p99_ms.max(r.read_p50_ms))
        .fold(0.0_f64, f64::max);
    let step = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]
        .into_iter()
        .find(|step| most / step <= 5.0)
        .unwrap_or(1000.0);
    let high = (most / step).ceil().max(1.0) * step;
    let y_of = |ms: f64| plot_bottom - plot_height * ms / high;
    let mut tick = 0.0;
    while tick <= high + 1e-9 {
        grid_line(out, y_of(tick), &format!("{tick} ms"));
        tick += step;
    }
    let slot = PLOT_WIDTH / runs.len().max(1) as f64;
    let bar = (slot * 0.5).min(80.0) / 2.0;
    for (n, run) in runs.iter().enumerate() {
        let centre = LEFT + slot * (n as f64 + 0.5);
        for (k, (ms, fill)) in [(run.read_p50_ms, P50), (run.read_p99_ms, P99)]
            .into_iter()
            .enumerate()
        {
            let x = centre - bar + k as f64 * bar;
            let y = y_of(ms);
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{fill}"/>"#,
                bar - 2.0,
                plot_bottom - y
            );
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{ms:.2}</text>"#,
                x + bar / 2.0 - 1.0,
                y - 4.0
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{centre:.1}" y="{}" text-anchor="middle">{}</text>"#,
            plot_bottom + 16.0,
            run.strategy
        );
    }
    let _ = writeln!(
        out,
        r#"<line x1="{LEFT}" y1="{plot_bottom}" x2="{}" y2="{plot_bottom}" stroke="black"/>"#,
        LEFT + PLOT_WIDTH
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::history::{Timeline, Verdict, Window};

    fn run(strategy: &str, behind: Vec<(u64, u64, Behind)>) -> Run {
        let verdict = Verdict {
            reads: 1_000,
            writes: 10,
            stale_reads: behind.iter().filter(|b| b.2 == Behind::Stale).count() as u64,
            timeline: Timeline {
                behind,
                reads_per_tick: vec![100; 10],
            },
            ..Default::default()
        };
        let mut run = Run::new(
            strategy.into(),
            2,
            &verdict,
            BTreeMap::new(),
            (1..=100).map(|n| n * 100).collect(),
            1.0,
            vec![],
        );
        run.fault_windows = vec![Window {
            start_us: 200_000,
            end_us: 400_000,
        }];
        run
    }

    #[test]
    fn every_kind_of_read_and_every_strategy_shows() {
        let runs = [
            run("ttl", vec![(500_000, 20_000_000, Behind::Stale)]),
            run("versioned", vec![(300_000, 2_000, Behind::InRepairWindow)]),
        ];
        let svg = svg(&runs);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(">ttl<") && svg.contains(">versioned<"));
        // One red dot for the stale read, one orange for the read in the window.
        assert_eq!(svg.matches(&format!(r#"r="2" fill="{STALE}""#)).count(), 1);
        assert_eq!(
            svg.matches(&format!(r#"r="2" fill="{IN_WINDOW}""#)).count(),
            1
        );
        // The fault window, shaded in both timelines; the axis reaches 20 s behind.
        assert_eq!(
            svg.matches(&format!(r#"fill="{FAULT}" opacity"#)).count(),
            2
        );
        assert!(svg.contains(">100 s<") || svg.contains(">10 s<"));
        assert!(svg.contains(">p99<"));
    }

    #[test]
    fn the_log_axis_places_decades_evenly() {
        let axis = LogAxis::up_to(2_500.0);
        assert_eq!(axis.high, 10_000.0);
        let decades: Vec<f64> = axis.decades().collect();
        assert_eq!(decades.len(), 6);
        let step = axis.y(1.0) - axis.y(0.1);
        assert!((axis.y(10.0) - axis.y(1.0) - step).abs() < 1e-9);
        assert_eq!(axis.y(0.0), 0.0, "a read 0 ms behind sits on the bottom");
    }
}
