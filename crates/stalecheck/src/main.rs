//! `stalecheck`: drives a workload against shopnow instances over HTTP, records every
//! operation, and checks that no read was older than what the design promises (see `history`).
//!
//! With `--spawn N` it starts everything itself, per strategy: its own `redis-server`, a fresh
//! database, N instances of the `shopnow` binary on free ports, and stops them afterwards. It
//! knows shopnow only from the outside: its HTTP API, its environment variables, its binary.
//!
//! # Layout
//! - `workload`: the readers and writers, and the recording of what each operation saw;
//!   `holders`: the shoppers who hold, release, convert, cancel and abandon;
//! - `history`: the check of the recorded operations against the invariants;
//!   `reservations`: the check of what reads show as reserved and stock against the holders;
//! - `inject`: the faults, and the repair windows they open;
//! - `spawn`: the run's own Redis, database and instances;
//! - `report`: the table and the JSON; `chart`: the SVG timeline per strategy.

mod chart;
mod history;
mod holders;
mod inject;
mod pages;
mod progress;
mod report;
mod reservations;
mod spawn;
mod workload;

use std::{
    collections::HashMap,
    path::PathBuf,
    process::ExitCode,
    sync::{atomic::Ordering, Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::json;
use testkit::{ShopnowProcess, TcpProxy};

use self::{
    inject::{Fault, Injected, Targets},
    progress::Progress,
    report::{Report, Run},
    spawn::{Deployment, InstanceSpec},
    workload::{Recording, Workload},
};

/// The Postgres a spawned run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PostgresTopology {
    /// A database of the run's own on the machine's Postgres (`--database-url`).
    Single,
    /// A primary and an asynchronous standby of the run's own, behind a moving endpoint.
    Replicated,
}

/// The Redis a spawned run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RedisTopology {
    Single,
    Replicated,
}

// The strategies a shopnow instance accepts, those that promise fresh reads (a stale read
// outside a repair window fails the run), and how long `delay-publish` stalls a write (a write
// that took this long was stalled): from the contract both sides compile against.
use shopnow_contract::{
    faults::PUBLISH_DELAY,
    strategies::{ALL as STRATEGIES, FRESH as FRESH_STRATEGIES},
};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "stalecheck",
    version,
    about = "Drive shopnow instances and count reads older than the design allows"
)]
pub struct Args {
    /// A running instance to drive (repeatable); requests are spread across them.
    #[arg(long = "target", value_name = "URL")]
    pub targets: Vec<String>,
    /// Start N instances per strategy (own Redis, fresh database) instead of using --target.
    #[arg(long, value_name = "N")]
    pub spawn: Option<usize>,
    /// The shopnow binary --spawn starts; by default the `shopnow` next to this binary.
    #[arg(long, value_name = "PATH")]
    pub shopnow_bin: Option<PathBuf>,
    /// Where --spawn makes its databases; with --target and --sql-writers, the database of
    /// the target instances.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/shopnow",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Strategies to run in turn with --spawn.
    #[arg(long, value_delimiter = ',', default_value = "ttl,delete,versioned", value_parser = parse_strategy)]
    pub strategies: Vec<String>,
    /// Products the workload touches.
    #[arg(long, default_value_t = 20)]
    pub products: usize,
    /// Concurrent writers (stock adjustments).
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    /// Concurrent readers (product details).
    #[arg(long, default_value_t = 32)]
    pub readers: usize,
    /// Concurrent writers that change stock straight in Postgres (an ERP sync, an admin in
    /// psql), without the API and without a version in their statement.
    #[arg(long, default_value_t = 0)]
    pub sql_writers: usize,
    /// Concurrent holders: each holds 1 or 2 units of a held product for 1 or 2 s, then
    /// releases the hold, turns it into an order (and cancels half of those), or lets it lapse.
    #[arg(long, default_value_t = 2)]
    pub holders: usize,
    /// Concurrent readers of category pages: the run's products are put in a category of the
    /// run's own, whose pages (by id, in stock by price, by price descending, a price range)
    /// they read; every item counts as a read of its product, and each page is checked for
    /// membership, filters and order. Needs a build with categories (skipped otherwise).
    #[arg(long, default_value_t = 4)]
    pub page_readers: usize,
    /// Products only holders change (besides --products), read by the readers too.
    #[arg(long, default_value_t = 5)]
    pub hold_products: usize,
    /// How far from a hold's expiry a read may judge it either way: the bound shopnow
    /// documents (its estimate of the database's clock).
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub hold_expiry_bound: Duration,
    /// How long after its commit a change made straight in Postgres may still be unseen:
    /// shopnow's documented bound for changes made outside the API.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub outside_bound: Duration,
    /// How long each strategy runs: 500ms, 30s, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop each run after this many operations, if sooner than --duration.
    #[arg(long)]
    pub ops: Option<u64>,
    /// Seed of the workload's choices: the same seed makes the same workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The Redis --spawn starts: `single` (one node) or `replicated` (a primary and a replica
    /// behind a moving endpoint, as managed Redis runs; instances wait for the replica).
    #[arg(long, value_enum, default_value = "single")]
    pub redis: RedisTopology,
    /// The Postgres --spawn uses: `single` (a database on the machine's server) or `replicated`
    /// (a primary and an asynchronous standby of the run's own, made with `pg_basebackup` from
    /// the machine's PostgreSQL binaries; `pg-failover` promotes the standby).
    #[arg(long, value_enum, default_value = "single")]
    pub postgres: PostgresTopology,
    /// Faults to inject in turn during each run (needs --spawn).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub faults: Vec<Fault>,
    /// Time between two injected faults.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub fault_interval: Duration,
    /// How long after a fault stale reads are allowed: shopnow's documented repair bound.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub repair_bound: Duration,
    /// Widen the window between a miss's Postgres read and its fill (spawned instances only),
    /// so that the `delete` strategy's race shows within seconds.
    #[arg(long, value_name = "MS")]
    pub fill_delay_ms: Option<u64>,
    /// Spawned instances keep hot products in memory (`SHOPNOW_NEAR_CACHE=on`; only `versioned`
    /// has a near cache).
    #[arg(long)]
    pub near_cache: bool,
    /// Admin token of the --target instances (default: SHOPNOW_ADMIN_TOKEN).
    #[arg(long, env = "SHOPNOW_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Write the report as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the chart: a timeline per strategy of how far behind each read was, and the read
    /// latencies.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// No progress display (for CI logs).
    #[arg(long)]
    pub quiet: bool,
}

fn parse_strategy(s: &str) -> Result<String, String> {
    STRATEGIES
        .contains(&s)
        .then(|| s.to_string())
        .ok_or_else(|| format!("expected one of {}", STRATEGIES.join(", ")))
}

/// Parses `500ms`, `30s`, `2m`.
fn parse_duration(s: &str) -> Result<Duration, String> {
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

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("stalecheck: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the check and prints the report. Fails when a strategy that promises fresh reads
/// (`versioned`, `none`) shows a stale read outside the repair windows.
async fn run(args: Args) -> anyhow::Result<()> {
    if args.products == 0 || args.writers + args.sql_writers + args.readers == 0 {
        bail!("--products, and --writers, --sql-writers or --readers, must be at least 1");
    }
    let runs = match args.spawn {
        Some(0) => bail!("--spawn needs at least one instance"),
        Some(count) => {
            let binary = shopnow_binary(&args)?;
            let mut runs = Vec::new();
            for strategy in &args.strategies {
                runs.push(spawned_run(&args, &binary, strategy, count).await?);
            }
            runs
        }
        None => {
            if args.targets.is_empty() {
                bail!("give --spawn N, or one or more --target URL");
            }
            if !args.faults.is_empty() || args.fill_delay_ms.is_some() || args.near_cache {
                bail!("--faults and --fill-delay-ms need --spawn");
            }
            vec![target_run(&args).await?]
        }
    };
    write_report(&args, runs)
}

fn write_report(args: &Args, runs: Vec<Run>) -> anyhow::Result<()> {
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
        std::fs::write(path, chart::svg(&report.runs))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let broken: Vec<&str> = report
        .runs
        .iter()
        .filter(|r| FRESH_STRATEGIES.contains(&r.strategy.as_str()) && !r.clean)
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

/// The shopnow binary to spawn: `--shopnow-bin`, or the `shopnow` next to this binary (cargo
/// builds both into the same directory).
fn shopnow_binary(args: &Args) -> anyhow::Result<PathBuf> {
    let binary = match &args.shopnow_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("shopnow"),
    };
    anyhow::ensure!(
        binary.is_file(),
        "no shopnow binary at {} (build it with `cargo build -p shopnow`, or pass --shopnow-bin)",
        binary.display()
    );
    Ok(binary)
}

/// One strategy against instances the checker starts.
async fn spawned_run(
    args: &Args,
    binary: &std::path::Path,
    strategy: &str,
    count: usize,
) -> anyhow::Result<Run> {
    let deployment = Deployment::create(
        args.redis == RedisTopology::Replicated,
        args.postgres == PostgresTopology::Replicated,
    )
    .await?;
    let spec = InstanceSpec {
        binary: binary.to_path_buf(),
        database_url: deployment.database.url.clone(),
        redis_url: deployment.redis.url(),
        strategy: strategy.to_string(),
        prefix: format!("stalecheck-{}", uuid::Uuid::new_v4().simple()),
        admin_token: uuid::Uuid::new_v4().simple().to_string(),
        fill_delay_ms: args.fill_delay_ms,
        near_cache: args.near_cache,
        faults: Fault::instance_faults(&args.faults),
        redis_replicas: deployment.redis.replicas(),
    };
    let redis_links = redis_links(&args.faults, &spec.redis_url, count)?;
    let redis_urls = match redis_links.is_empty() {
        true => vec![spec.redis_url.clone(); count],
        false => redis_links
            .iter()
            .map(|link| format!("redis://{}", link.address()))
            .collect(),
    };
    let instances = start_instances(&spec, redis_urls).await?;
    let targets: Vec<String> = instances.iter().map(ShopnowProcess::url).collect();
    let categories = run_categories(args, &targets[0], &spec.admin_token).await?;
    let leaf = categories.as_ref().map(|c| c.leaf.as_str());
    let products = create_products(&targets, &spec.admin_token, args.products, leaf).await?;
    let hold_products =
        create_products(&targets, &spec.admin_token, args.hold_products, leaf).await?;
    let database = sql_writers_database(args, &deployment.database.url).await?;
    let workload = workload_of(
        args,
        targets,
        (products, hold_products),
        spec.admin_token.clone(),
        database,
        categories,
    );

    let Deployment {
        redis,
        database,
        postgres,
    } = deployment;
    let redis_url = redis.url();
    let fault_targets = Arc::new(Targets {
        redis: Arc::new(tokio::sync::Mutex::new(redis)),
        postgres: Arc::new(Mutex::new(postgres)),
        redis_url,
        prefix: spec.prefix.clone(),
        instances: Arc::new(Mutex::new(instances)),
        redis_links,
        repair_bound: args.repair_bound,
    });
    let (recording, injected) = drive(args, strategy, &workload, fault_targets.clone()).await;

    let instances = fault_targets.instances.clone();
    tokio::task::spawn_blocking(move || {
        for instance in instances.lock().expect("instances lock").iter_mut() {
            instance.stop();
        }
    })
    .await?;
    let final_versions = spawn::final_versions(&database).await?;
    let kept = spawn::kept_holds_and_orders(&database).await?;
    let mut recording = recording;
    reservations::reconcile(&mut recording.holds, &mut recording.orders, &kept);
    // Before the Postgres servers it lives on stop (with `fault_targets`).
    drop(database);
    Ok(finish(
        strategy,
        count,
        recording,
        &final_versions,
        injected,
        args,
    ))
}

/// Starts one instance per Redis URL: the first alone (it migrates the database), the rest
/// together.
async fn start_instances(
    spec: &InstanceSpec,
    redis_urls: Vec<String>,
) -> anyhow::Result<Vec<ShopnowProcess>> {
    let mut specs = redis_urls.into_iter().map(|redis_url| InstanceSpec {
        redis_url,
        ..spec.clone()
    });
    let first = specs.next().context("no instance to start")?;
    let first = tokio::task::spawn_blocking(move || first.start()).await??;
    let rest: Vec<_> = specs
        .map(|spec| tokio::task::spawn_blocking(move || spec.start()))
        .collect();
    let mut instances = vec![first];
    for started in rest {
        instances.push(started.await??);
    }
    Ok(instances)
}

/// With `instance-redis-partition` or `redis-partition-all`, a proxy of its own between each
/// instance and Redis, which the fault holds; none otherwise (a proxy costs every Redis call a
/// hop).
fn redis_links(faults: &[Fault], redis_url: &str, count: usize) -> anyhow::Result<Vec<TcpProxy>> {
    let partitioned = [Fault::InstanceRedisPartition, Fault::RedisPartitionAll];
    if !faults.iter().any(|fault| partitioned.contains(fault)) {
        return Ok(Vec::new());
    }
    let address: std::net::SocketAddr = redis_url
        .strip_prefix("redis://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|address| address.parse().ok())
        .with_context(|| format!("a partition of Redis needs a redis:// URL, not {redis_url}"))?;
    Ok((0..count).map(|_| TcpProxy::start(address)).collect())
}

/// Runs the workload with the fault injector beside it; returns what both recorded.
async fn drive(
    args: &Args,
    label: &str,
    workload: &Workload,
    targets: Arc<Targets>,
) -> (Recording, Injected) {
    let origin = Instant::now();
    let progress = Arc::new(Progress::default());
    let display = show_progress(label, args, progress.clone(), origin);
    let injector = tokio::spawn(inject::run(
        args.faults.clone(),
        args.fault_interval,
        targets,
        origin,
        origin + args.duration,
    ));
    let recording = workload::run(workload, origin, progress).await;
    let injected = injector.await.unwrap_or_default();
    display.abort();
    (recording, injected)
}

fn workload_of(
    args: &Args,
    targets: Vec<String>,
    (products, hold_products): (Vec<i64>, Vec<i64>),
    token: String,
    database: Option<sqlx::PgPool>,
    categories: Option<pages::RunCategories>,
) -> Workload {
    let holders = if hold_products.is_empty() {
        0
    } else {
        args.holders
    };
    Workload {
        targets,
        products,
        hold_products,
        holders,
        writers: args.writers,
        readers: args.readers,
        sql_writers: args.sql_writers,
        database,
        duration: args.duration,
        max_ops: args.ops,
        seed: args.seed,
        admin_token: token,
        page_readers: args.page_readers,
        categories,
    }
}

/// The run's categories when pages are read (`--page-readers`), if the instances have them.
async fn run_categories(
    args: &Args,
    target: &str,
    token: &str,
) -> anyhow::Result<Option<pages::RunCategories>> {
    if args.page_readers == 0 {
        return Ok(None);
    }
    let categories = pages::create_categories(target, token).await?;
    if categories.is_none() {
        eprintln!("stalecheck: the instances have no categories; no pages are read");
    }
    Ok(categories)
}

/// One run against instances given with --target; the strategy is what they report.
async fn target_run(args: &Args) -> anyhow::Result<Run> {
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
    let categories = run_categories(args, &targets[0], &token).await?;
    let leaf = categories.as_ref().map(|c| c.leaf.as_str());
    let products = create_products(&targets, &token, args.products, leaf).await?;
    let hold_products = create_products(&targets, &token, args.hold_products, leaf).await?;
    let database = sql_writers_database(args, &args.database_url).await?;
    let all_products = [&products[..], &hold_products[..]].concat();
    let workload = workload_of(
        args,
        targets.clone(),
        (products, hold_products),
        token,
        database,
        categories,
    );
    let origin = Instant::now();
    let progress = Arc::new(Progress::default());
    let display = show_progress(&strategy, args, progress.clone(), origin);
    let recording = workload::run(&workload, origin, progress).await;
    display.abort();
    let final_versions = versions_through_the_api(&targets[0], &all_products).await?;
    Ok(finish(
        &strategy,
        targets.len(),
        recording,
        &final_versions,
        Injected::default(),
        args,
    ))
}

/// The final stamps (from the ETags), read through the API after the load: the newest any
/// write produced.
async fn versions_through_the_api(
    target: &str,
    products: &[i64],
) -> anyhow::Result<HashMap<i64, i64>> {
    use shopnow_contract::stamps;
    let client = reqwest::Client::new();
    let mut versions = HashMap::new();
    for &id in products {
        let response = client
            .get(format!("{target}/v1/products/{id}"))
            .send()
            .await?;
        let stamp = response
            .headers()
            .get("etag")
            .and_then(|etag| etag.to_str().ok())
            .and_then(stamps::parse_etag)
            .map_or(i64::MAX, |(history, version)| {
                stamps::stamp(history, version)
            });
        versions.insert(id, stamp);
    }
    Ok(versions)
}

fn finish(
    strategy: &str,
    instances: usize,
    recording: Recording,
    final_versions: &HashMap<i64, i64>,
    injected: Injected,
    args: &Args,
) -> Run {
    let allowances = history::Allowances {
        windows: &injected.windows,
        outside_bound_us: args.outside_bound.as_micros() as u64,
    };
    // Every item of a page is a read of its product: checked with the product reads, and
    // alone with the writes, for what pages showed.
    let mut ops = recording.ops.clone();
    ops.extend_from_slice(&recording.pages.ops);
    let verdict = history::check(&ops, final_versions, &allowances);
    let page_verdict = (!recording.pages.ops.is_empty()).then(|| {
        let mut ops: Vec<history::Op> = recording
            .ops
            .iter()
            .filter(|op| op.kind != history::OpKind::Read)
            .copied()
            .collect();
        ops.extend_from_slice(&recording.pages.ops);
        history::check(&ops, final_versions, &allowances)
    });
    let holds = reservations::check(
        &recording.held_reads,
        &recording.holds,
        &recording.orders,
        &reservations::HoldAllowances {
            windows: &injected.windows,
            expiry_bound_us: args.hold_expiry_bound.as_micros() as u64,
            initial_stock: INITIAL_STOCK,
        },
    );
    let delayed_publish_hits = history::delayed_publish_hits(
        &recording.ops,
        &injected.key_drops,
        PUBLISH_DELAY.as_micros() as u64,
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
    run.clean &= holds.errors() == 0;
    if let Some(page_verdict) = page_verdict {
        let failovers: Vec<(u64, u64)> = injected
            .injections
            .iter()
            .filter(|injection| injection.fault == inject::Fault::PgFailover.name())
            .map(|injection| {
                (
                    injection.start_ms.saturating_sub(1_000) * 1_000,
                    injection.end_ms * 1_000,
                )
            })
            .collect();
        let (range_checks, range_violations, range_examples) = pages::check_ranges(
            &recording.pages.range_reads,
            &recording.price_writes,
            &recording.first_prices,
            &failovers,
        );
        let mut examples = recording.pages.examples;
        examples.extend(range_examples);
        run.pages = report::PageReport {
            pages: recording.pages.pages,
            item_reads: page_verdict.reads,
            stale_item_reads: page_verdict.stale_reads,
            stale_in_repair_window: page_verdict.stale_in_repair_window,
            range_checks,
            violations: recording.pages.violations + range_violations,
            examples,
        };
        run.clean &= run.pages.violations == 0;
    }
    run.holds = holds;
    run.started_at_unix_ms = recording.started_at_unix_ms;
    run.fault_windows = injected.windows;
    run.injections = injected.injections;
    run
}

/// The SQL writers' connections to the run's database, when there are SQL writers.
async fn sql_writers_database(args: &Args, url: &str) -> anyhow::Result<Option<sqlx::PgPool>> {
    if args.sql_writers == 0 {
        return Ok(None);
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(args.sql_writers as u32)
        .connect(url)
        .await
        .context("connecting the SQL writers to the database (--database-url)")?;
    Ok(Some(pool))
}

/// The stock every product of a run starts with: plenty, so that adjustments never run out.
const INITIAL_STOCK: i64 = 1_000_000_000;

/// Creates the products of a run with plenty of stock, so that adjustments never run out.
///
/// Instances may crash right after a commit from their start (`crash-after-commit`): a create
/// that gets no answer is sent again to the next instance, and if the first one committed
/// before it died (409, the SKU exists), the product is found by its SKU in the list.
async fn create_products(
    targets: &[String],
    token: &str,
    count: usize,
    category: Option<&str>,
) -> anyhow::Result<Vec<i64>> {
    let client = reqwest::Client::new();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut ids = Vec::with_capacity(count);
    let mut next_target = 0;
    for n in 0..count {
        let sku = format!("STALECHECK-{}-{n}", &run[..12]);
        let mut attempts = 0;
        let id = loop {
            let target = &targets[next_target % targets.len()];
            attempts += 1;
            let sent = client
                .post(format!("{target}/v1/products"))
                .bearer_auth(token)
                .json(&{
                    let mut product = json!({
                        "sku": sku,
                        "name": format!("Stale check product {n}"),
                        "price_cents": pages::first_price(n),
                        "stock": INITIAL_STOCK,
                    });
                    if let Some(category) = category {
                        product["categories"] = json!([category]);
                    }
                    product
                })
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(error) if attempts < 2 * targets.len() => {
                    eprintln!("stalecheck: creating product {sku} on {target}: {error}; trying the next instance");
                    next_target += 1;
                    continue;
                }
                Err(error) => {
                    return Err(error).context("creating the run's products");
                }
            };
            if response.status() == reqwest::StatusCode::CONFLICT && attempts > 1 {
                break find_by_sku(&client, target, &sku).await?;
            }
            if !response.status().is_success() {
                bail!(
                    "creating a product answered {}: {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                );
            }
            let product: serde_json::Value = response.json().await?;
            break product["id"].as_i64().context("product id")?;
        };
        ids.push(id);
    }
    Ok(ids)
}

/// The id of the product with `sku`, paging through the product list.
async fn find_by_sku(client: &reqwest::Client, target: &str, sku: &str) -> anyhow::Result<i64> {
    let mut after = 0;
    loop {
        let page: serde_json::Value = client
            .get(format!("{target}/v1/products?limit=200&after={after}"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let items = page["items"].as_array().context("a product page")?;
        if let Some(product) = items.iter().find(|p| p["sku"] == sku) {
            return product["id"].as_i64().context("product id");
        }
        match page["next"].as_i64() {
            Some(next) => after = next,
            None => bail!("product {sku} was refused as a duplicate but is not listed"),
        }
    }
}

/// A progress line on stderr while a run goes on, unless --quiet or not a terminal.
fn show_progress(
    label: &str,
    args: &Args,
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

    #[test]
    fn strategies_are_the_ones_shopnow_accepts() {
        assert_eq!(parse_strategy("versioned"), Ok("versioned".to_string()));
        assert!(parse_strategy("article").is_err());
    }
}
