//! The load a stale check drives over HTTP, as a shop front end would: writers adjust stock,
//! readers read product details, both spread over the instances. Every acknowledged operation
//! is recorded with its start, end and what it returned.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::Deserialize;

use super::history::{Op, OpKind};

/// What the workload does and for how long.
#[derive(Clone, Debug)]
pub struct Workload {
    pub targets: Vec<String>,
    pub products: Vec<i64>,
    pub writers: usize,
    pub readers: usize,
    pub duration: Duration,
    /// Stop after this many operations in all, if sooner.
    pub max_ops: Option<u64>,
    pub seed: u64,
    pub admin_token: String,
}

/// The recorded operations, and the counters shown while it runs.
pub struct Recording {
    pub ops: Vec<Op>,
    pub failed: u64,
    /// Failed requests by cause: an HTTP status, or `transport` (no answer).
    pub failures: BTreeMap<String, u64>,
    /// Read latencies in microseconds, in no particular order.
    pub read_latencies_us: Vec<u64>,
    pub elapsed: Duration,
}

/// Counters the progress display reads while the workload runs.
#[derive(Default)]
pub struct Progress {
    pub ops: AtomicU64,
    pub failed: AtomicU64,
}

#[derive(Deserialize)]
struct Observed {
    version: i64,
    stock: i64,
}

/// Runs the workload from `origin`, the time zero of every recorded operation.
pub async fn run(workload: &Workload, origin: Instant, progress: Arc<Progress>) -> Recording {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(64)
        .build()
        .expect("HTTP client");
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = origin + workload.duration;

    let mut tasks = Vec::new();
    for task in 0..workload.writers + workload.readers {
        let kind = if task < workload.writers {
            OpKind::Write
        } else {
            OpKind::Read
        };
        let client = client.clone();
        let workload = workload.clone();
        let stop = stop.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            // Same seed, same choices: which product, which instance, which change.
            let mut rng =
                StdRng::seed_from_u64(workload.seed.wrapping_mul(1_000_003) + task as u64);
            let mut ops = Vec::new();
            let mut failures: BTreeMap<String, u64> = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let product = workload.products[rng.random_range(0..workload.products.len())];
                let instance = rng.random_range(0..workload.targets.len());
                let base = &workload.targets[instance];
                let start = origin.elapsed();
                let result = match kind {
                    OpKind::Write => {
                        let delta = if rng.random_bool(0.5) { 1 } else { -1 };
                        client
                            .post(format!("{base}/v1/products/{product}/stock/adjustments"))
                            .bearer_auth(&workload.admin_token)
                            .json(&serde_json::json!({ "delta": delta }))
                            .send()
                            .await
                    }
                    OpKind::Read => {
                        client
                            .get(format!("{base}/v1/products/{product}"))
                            .send()
                            .await
                    }
                };
                let observed = match result {
                    Ok(response) if response.status().is_success() => response
                        .json::<Observed>()
                        .await
                        .map_err(|_| "unreadable body".to_string()),
                    Ok(response) => Err(response.status().as_u16().to_string()),
                    Err(_) => Err("transport".to_string()),
                };
                let end = origin.elapsed();
                let count = progress.ops.fetch_add(1, Ordering::Relaxed) + 1;
                if workload.max_ops.is_some_and(|max| count >= max) {
                    stop.store(true, Ordering::Relaxed);
                }
                match observed {
                    Ok(Observed { version, stock }) => ops.push(Op {
                        kind,
                        product,
                        instance,
                        start_us: start.as_micros() as u64,
                        end_us: end.as_micros() as u64,
                        version,
                        stock,
                    }),
                    Err(cause) => {
                        // Refused, failed or unanswered (an instance being killed): the
                        // operation's outcome is unknown, so it is not an observation.
                        *failures.entry(cause).or_insert(0) += 1;
                        progress.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            (ops, failures)
        }));
    }

    let mut recording = Recording {
        ops: Vec::new(),
        failed: 0,
        failures: BTreeMap::new(),
        read_latencies_us: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        if let Ok((ops, failures)) = task.await {
            for (cause, count) in failures {
                recording.failed += count;
                *recording.failures.entry(cause).or_insert(0) += count;
            }
            recording.read_latencies_us.extend(
                ops.iter()
                    .filter(|op| op.kind == OpKind::Read)
                    .map(|op| op.end_us - op.start_us),
            );
            recording.ops.extend(ops);
        }
    }
    recording.elapsed = origin.elapsed();
    recording
}
