//! Logs and metrics: the tracing subscriber, the Prometheus recorder, and what the edge calls to
//! count and time every request by its matched route.
//!
//! Memory stays bounded whether or not anyone scrapes `/metrics`: every label comes from a
//! bounded set (a known method or `other`, a matched route or `unmatched`, a status code), and
//! the recorder's histogram samples are folded into their buckets every `UPKEEP_INTERVAL` by a
//! thread of their own, not only when `/metrics` is rendered.

use std::{
    cell::RefCell,
    collections::HashMap,
    sync::{
        atomic::{AtomicU8, Ordering},
        OnceLock,
    },
    time::Duration,
};

use axum::http::{Method, StatusCode};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

/// How logs are written (`SHOPNOW_LOG_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// How often recorded histogram samples are folded into their buckets. Until then each sample
/// is kept in memory: at 50,000 requests a second, one interval holds about 400 KB of them.
pub(crate) const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Installs the global log subscriber. Level from `RUST_LOG`, `info` by default.
pub fn init_logging(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true))
            .try_init(),
        // Colours only for a person at a terminal: in a file or a log collector the escape
        // codes are noise.
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())),
            )
            .try_init(),
    };
    // A second call (tests start several apps in one process) keeps the first subscriber.
    let _ = result;
}

/// The process-wide Prometheus recorder, with its upkeep thread. Metrics are global in the
/// `metrics` crate, so several apps in one process (tests) share it.
pub(crate) fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".to_string()),
                &[
                    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, 5.0, 10.0,
                ],
            )
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (a test harness); then ours only renders.
        let _ = metrics::set_global_recorder(recorder);
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            })
            .expect("spawning the metrics upkeep thread");
        handle
    })
}

/// The methods that get a label of their own; any other is counted as `other`, so that a client
/// inventing methods cannot create series.
const KNOWN_METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

/// The route label of a request no route matched: raw paths are never labels.
const UNMATCHED_ROUTE: &str = "unmatched";

/// The counter and histogram of one method, route and status.
struct RequestSeries {
    requests: Counter,
    duration: Histogram,
}

thread_local! {
    /// Per route, then per (index in `KNOWN_METHODS`, or its length for `other`) << 16 |
    /// status, the series this thread has recorded to. Looking one up allocates nothing and
    /// takes no lock (a shared table cost every request two read locks, both on memory every
    /// thread writes); only a thread's first request of a combination builds its label strings
    /// and finds the series in the registry, whose counters all threads share.
    static REQUEST_SERIES: RefCell<HashMap<Box<str>, HashMap<u32, RequestSeries>>> =
        RefCell::new(HashMap::new());
}

/// Runs `record` on the series of `method`, `route` and `status`.
fn with_series(method: &Method, route: &str, status: u16, record: impl FnOnce(&RequestSeries)) {
    let method_index = KNOWN_METHODS
        .iter()
        .position(|known| known == method)
        .unwrap_or(KNOWN_METHODS.len());
    let key = (method_index as u32) << 16 | u32::from(status);
    let series_in = |by_status: &mut HashMap<u32, RequestSeries>| {
        let series = by_status.entry(key).or_insert_with(|| {
            let method_label = KNOWN_METHODS
                .get(method_index)
                .map_or("other", Method::as_str);
            let labels = [
                ("method", method_label.to_owned()),
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ];
            RequestSeries {
                requests: metrics::counter!("http_requests_total", &labels),
                duration: metrics::histogram!("http_request_duration_seconds", &labels),
            }
        });
        record(series);
    };
    REQUEST_SERIES.with_borrow_mut(|routes| match routes.get_mut(route) {
        Some(by_status) => series_in(by_status),
        None => series_in(routes.entry(route.into()).or_default()),
    });
}

/// Records what `/readyz` answered: `instance_ready` (1 or 0) and, when it differs from the
/// previous answer, `readiness_changes_total`, which an alert on flapping readiness counts
/// (a gauge alone would hide changes between two scrapes).
pub(crate) fn record_readiness(ready: bool) {
    /// The previous answer: 0 none yet, 1 ready, 2 not ready.
    static PREVIOUS: AtomicU8 = AtomicU8::new(0);
    let now = if ready { 1 } else { 2 };
    let previous = PREVIOUS.swap(now, Ordering::Relaxed);
    metrics::gauge!("instance_ready").set(if ready { 1.0 } else { 0.0 });
    let changes = metrics::counter!("readiness_changes_total");
    if previous != 0 && previous != now {
        changes.increment(1);
    }
}

/// Counts a request and records its latency, labelled by method, matched route and status.
/// The matched route (`/v1/products/{id}`), not the raw path, keeps label cardinality bounded.
pub(crate) fn record_request(
    method: &Method,
    route: Option<&str>,
    status: StatusCode,
    took: Duration,
) {
    let route = route.unwrap_or(UNMATCHED_ROUTE);
    with_series(method, route, status.as_u16(), |series| {
        series.requests.increment(1);
        series.duration.record(took.as_secs_f64());
    });
}
