//! `shopnow stalecheck`: drives a workload against instances, records every operation, and
//! checks that no read was older than what the design promises (see `history`).
//!
//! With `--spawn N` it starts everything itself, per strategy: its own `redis-server`, a fresh
//! database, N instances of this binary on free ports, and stops them afterwards.

mod cluster;
pub mod history;
mod inject;
pub mod report;
mod workload;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{atomic::Ordering, Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::json;
use sqlx::{migrate::MigrateDatabase, PgPool, Postgres};

use self::{
    cluster::{Instance, InstanceSpec, OwnRedis},
    inject::{Fault, Injected, Targets},
    report::{Report, Run},
    workload::{Progress, Workload},
};
use crate::{cache::CacheStrategy, config::Config, faults};

#[derive(Debug, Clone, Args)]
pub struct StalecheckArgs {
    /// A running instance to drive (repeatable); requests are spread across them.
    #[arg(long = "target", value_name = "URL")]
    pub targets: Vec<String>,
    /// Start N instances per strategy (own Redis, fresh database) instead of using --target.
    #[arg(long, value_name = "N")]
    pub spawn: Option<usize>,
    /// Strategies to run in turn with --spawn.
    #[arg(long, value_delimiter = ',', default_value = "ttl,delete,versioned", value_parser = parse_strategy)]
    pub strategies: Vec<CacheStrategy>,
    /// Products the workload touches.
    #[arg(long, default_value_t = 20)]
    pub products: usize,
    /// Concurrent writers (stock adjustments).
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    /// Concurrent readers (product details).
    #[arg(long, default_value_t = 32)]
    pub readers: usize,
    /// How long each strategy runs: 500ms, 30s, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop each run after this many operations, if sooner than --duration.
    #[arg(long)]
    pub ops: Option<u64>,
    /// Seed of the workload's choices: the same seed makes the same workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Faults to inject in turn during each run (needs --spawn).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub faults: Vec<Fault>,
    /// Time between two injected faults.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub fault_interval: Duration,
    /// Widen the window between a miss's Postgres read and its fill (spawned instances only),
    /// so that the `delete` strategy's race shows within seconds.
    #[arg(long, value_name = "MS")]
    pub fill_delay_ms: Option<u64>,
    /// Admin token of the --target instances (default: SHOPNOW_ADMIN_TOKEN).
    #[arg(long, env = "SHOPNOW_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Write the report as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a chart of stale-read share and read latency per strategy.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// No progress display (for CI logs).
    #[arg(long)]
    pub quiet: bool,
}

fn parse_strategy(s: &str) -> Result<CacheStrategy, String> {
    s.parse()
}

/// Parses `500ms`, `30s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 500ms, 30s, 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{s:?}: the unit must be ms, s or m")),
    }
}

/// Runs the check and prints the report. Fails when a strategy that promises fresh reads
/// (`versioned`, `none`) shows a stale read outside the repair windows.
pub async fn run(args: StalecheckArgs, config: &Config) -> anyhow::Result<()> {
    if args.products == 0 || args.writers + args.readers == 0 {
        bail!("--products, and --writers or --readers, must be at least 1");
    }
    let runs = match args.spawn {
        Some(count) => {
            if count == 0 {
                bail!("--spawn needs at least one instance");
            }
            if Fault::instance_faults(&args.faults).is_some() && !faults::AVAILABLE {
                bail!("crash-after-commit and delayed-publish need a build with fault injection: cargo build --release --features fault-injection");
            }
            let mut runs = Vec::new();
            for strategy in &args.strategies {
                runs.push(spawned_run(&args, config, *strategy, count).await?);
            }
            runs
        }
        None => {
            if args.targets.is_empty() {
                bail!("give --spawn N, or one or more --target URL");
            }
            if !args.faults.is_empty() || args.fill_delay_ms.is_some() {
                bail!("--faults and --fill-delay-ms need --spawn");
            }
            vec![target_run(&args).await?]
        }
    };

    print!("{}", report::table(&runs));
    let report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        runs,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        std::fs::write(path, report::svg(&report.runs))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let broken: Vec<&str> = report
        .runs
        .iter()
        .filter(|r| {
            matches!(r.strategy.as_str(), "versioned" | "none")
                && (r.stale_reads + r.conflicting_versions + r.phantom_versions) > 0
        })
        .map(|r| r.strategy.as_str())
        .collect();
    if !broken.is_empty() {
        bail!(
            "stale reads where the design promises none: {}",
            broken.join(", ")
        );
    }
    Ok(())
}

/// One strategy against instances the checker starts.
async fn spawned_run(
    args: &StalecheckArgs,
    config: &Config,
    strategy: CacheStrategy,
    count: usize,
) -> anyhow::Result<Run> {
    let redis = Arc::new(Mutex::new(OwnRedis::start()?));
    let redis_url = redis.lock().expect("redis lock").url();
    let database = FreshDatabase::create(&config.database_url).await?;
    let spec = InstanceSpec {
        database_url: database.url.clone(),
        redis_url: redis_url.clone(),
        strategy,
        prefix: format!("stalecheck-{}", uuid::Uuid::new_v4().simple()),
        admin_token: uuid::Uuid::new_v4().simple().to_string(),
        fill_delay_ms: args.fill_delay_ms,
        faults: Fault::instance_faults(&args.faults),
    };
    let first = tokio::task::spawn_blocking({
        let spec = spec.clone();
        move || Instance::start(&spec)
    })
    .await??;
    let mut instances = vec![first];
    // The first instance migrated the database; the others start in parallel.
    let rest: Vec<_> = (1..count)
        .map(|_| {
            let spec = spec.clone();
            tokio::task::spawn_blocking(move || Instance::start(&spec))
        })
        .collect();
    for started in rest {
        instances.push(started.await??);
    }
    let targets: Vec<String> = instances
        .iter()
        .map(|i| format!("http://{}", i.addr))
        .collect();
    let instances = Arc::new(Mutex::new(instances));

    let products = create_products(&targets[0], &spec.admin_token, args.products).await?;
    let workload = Workload {
        targets,
        products,
        writers: args.writers,
        readers: args.readers,
        duration: args.duration,
        max_ops: args.ops,
        seed: args.seed,
        admin_token: spec.admin_token.clone(),
    };
    let fault_targets = Arc::new(Targets {
        redis: redis.clone(),
        redis_url,
        prefix: spec.prefix.clone(),
        instances: instances.clone(),
    });
    let origin = Instant::now();
    let progress = Arc::new(Progress::default());
    let display = show_progress(strategy.as_str(), args, progress.clone(), origin);
    let injector = tokio::spawn(inject::run(
        args.faults.clone(),
        args.fault_interval,
        fault_targets,
        origin,
        origin + args.duration,
    ));
    let recording = workload::run(&workload, origin, progress).await;
    let injected = injector.await.unwrap_or_default();
    display.abort();

    tokio::task::spawn_blocking(move || {
        for instance in instances.lock().expect("instances lock").iter_mut() {
            instance.stop();
        }
    })
    .await?;
    let final_versions = database.versions().await?;
    database.drop().await;
    Ok(finish(
        strategy.as_str(),
        count,
        recording,
        &final_versions,
        injected,
    ))
}

/// One run against instances given with --target; the strategy is what they report.
async fn target_run(args: &StalecheckArgs) -> anyhow::Result<Run> {
    let token = args.admin_token.clone().context(
        "--target needs the instances' admin token: --admin-token or SHOPNOW_ADMIN_TOKEN",
    )?;
    let targets: Vec<String> = args
        .targets
        .iter()
        .map(|t| t.trim_end_matches('/').to_string())
        .collect();
    let readiness: serde_json::Value = reqwest::get(format!("{}/readyz", targets[0]))
        .await?
        .json()
        .await?;
    let strategy = readiness["strategy"]
        .as_str()
        .unwrap_or("unknown")
        .to_string();
    let products = create_products(&targets[0], &token, args.products).await?;
    let workload = Workload {
        targets: targets.clone(),
        products: products.clone(),
        writers: args.writers,
        readers: args.readers,
        duration: args.duration,
        max_ops: args.ops,
        seed: args.seed,
        admin_token: token,
    };
    let origin = Instant::now();
    let progress = Arc::new(Progress::default());
    let display = show_progress(&strategy, args, progress.clone(), origin);
    let recording = workload::run(&workload, origin, progress).await;
    display.abort();
    // The final versions, read through the API after the load: the newest any write produced.
    let client = reqwest::Client::new();
    let mut final_versions = HashMap::new();
    for id in products {
        let product: serde_json::Value = client
            .get(format!("{}/v1/products/{id}", targets[0]))
            .send()
            .await?
            .json()
            .await?;
        final_versions.insert(id, product["version"].as_i64().unwrap_or(i64::MAX));
    }
    Ok(finish(
        &strategy,
        targets.len(),
        recording,
        &final_versions,
        Injected::default(),
    ))
}

fn finish(
    strategy: &str,
    instances: usize,
    recording: workload::Recording,
    final_versions: &HashMap<i64, i64>,
    injected: Injected,
) -> Run {
    let verdict = history::check(&recording.ops, final_versions, &injected.windows);
    let delayed_publish_hits = history::delayed_publish_hits(
        &recording.ops,
        &injected.key_drops,
        faults::PUBLISH_DELAY.as_micros() as u64,
    );
    let mut run = Run::new(
        strategy.to_string(),
        instances,
        &verdict,
        recording.failures,
        recording.read_latencies_us,
        recording.elapsed.as_secs_f64(),
        injected.faults,
    );
    run.delayed_publish_hits = delayed_publish_hits;
    run
}

/// Creates the products of a run with plenty of stock, so that adjustments never run out.
async fn create_products(target: &str, token: &str, count: usize) -> anyhow::Result<Vec<i64>> {
    let client = reqwest::Client::new();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let response = client
            .post(format!("{target}/v1/products"))
            .bearer_auth(token)
            .json(&json!({
                "sku": format!("STALECHECK-{}-{n}", &run[..12]),
                "name": format!("Stale check product {n}"),
                "price_cents": 100,
                "stock": 1_000_000_000,
            }))
            .send()
            .await
            .context("creating the run's products")?;
        if !response.status().is_success() {
            bail!(
                "creating a product answered {}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        let product: serde_json::Value = response.json().await?;
        ids.push(product["id"].as_i64().context("product id")?);
    }
    Ok(ids)
}

/// A progress line on stderr while a run goes on, unless --quiet or not a terminal.
fn show_progress(
    label: &str,
    args: &StalecheckArgs,
    progress: Arc<Progress>,
    origin: Instant,
) -> tokio::task::JoinHandle<()> {
    let bar = if args.quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(args.duration.as_millis() as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>10} [{bar:30}] {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    tokio::spawn(async move {
        loop {
            bar.set_position(origin.elapsed().as_millis() as u64);
            bar.set_message(format!(
                "{} ops, {} failed",
                progress.ops.load(Ordering::Relaxed),
                progress.failed.load(Ordering::Relaxed)
            ));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// A database of one run, created empty and dropped at the end.
struct FreshDatabase {
    url: String,
    admin_url: String,
    name: String,
}

impl FreshDatabase {
    async fn create(base_url: &str) -> anyhow::Result<Self> {
        let server = base_url
            .rsplit_once('/')
            .map(|(server, _)| server)
            .unwrap_or(base_url);
        let name = format!("shopnow_stalecheck_{}", uuid::Uuid::new_v4().simple());
        let url = format!("{server}/{name}");
        Postgres::create_database(&url)
            .await
            .context("creating the run's database")?;
        Ok(Self {
            url,
            admin_url: format!("{server}/postgres"),
            name,
        })
    }

    async fn versions(&self) -> anyhow::Result<HashMap<i64, i64>> {
        let pool = PgPool::connect(&self.url).await?;
        let rows: Vec<(i64, i64)> = sqlx::query_as("SELECT id, version FROM products")
            .fetch_all(&pool)
            .await?;
        pool.close().await;
        Ok(rows.into_iter().collect())
    }

    async fn drop(self) {
        if let Ok(pool) = PgPool::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&pool)
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3h").is_err());
    }
}
