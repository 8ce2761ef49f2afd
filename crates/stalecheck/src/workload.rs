//! The load a stale check drives over HTTP, as a shop front end would: writers adjust stock,
//! holders hold stock and release, convert or abandon their holds (`holders`), readers read
//! product details; all spread over the instances. Every acknowledged operation is recorded
//! with its start, end and what it returned.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::Deserialize;
use shopnow_contract::stamps;

use crate::{
    history::{Op, OpKind},
    holders::Holder,
    pages::{first_price, PageReader, PageRecording, RunCategories, PRICES},
    progress::Progress,
    reservations::{HeldRead, HoldRecord, OrderRecord},
};

/// What the workload does and for how long.
#[derive(Clone, Debug)]
pub struct Workload {
    pub targets: Vec<String>,
    pub products: Vec<i64>,
    pub writers: usize,
    pub readers: usize,
    /// Writers that change stock straight in Postgres, through `database`.
    pub sql_writers: usize,
    pub database: Option<sqlx::PgPool>,
    pub duration: Duration,
    /// Stop after this many operations in all, if sooner.
    pub max_ops: Option<u64>,
    pub seed: u64,
    pub admin_token: String,
    /// Products only holders change (no stock writer touches them, so that their stock and
    /// reservations can be checked against what the holders did).
    pub hold_products: Vec<i64>,
    pub holders: usize,
    /// Readers of the run's category pages (`pages`); none without categories.
    pub page_readers: usize,
    pub categories: Option<RunCategories>,
}

/// A price change a writer sent: when, and the price; `acknowledged` false when no answer
/// came (it may have committed or not).
#[derive(Debug, Clone, Copy)]
pub struct PriceWrite {
    pub product: i64,
    pub start_us: u64,
    pub end_us: u64,
    pub price: i64,
    pub acknowledged: bool,
}

/// The recorded operations, and the counters shown while it runs.
pub struct Recording {
    pub ops: Vec<Op>,
    /// Failed requests by cause: an HTTP status, or `transport` (no answer).
    pub failures: BTreeMap<String, u64>,
    /// Read latencies in microseconds, in no particular order.
    pub read_latencies_us: Vec<u64>,
    pub elapsed: Duration,
    /// The wall clock when the run started, in ms since the epoch: where its times are from.
    pub started_at_unix_ms: i64,
    /// Reads of the held products, with their reservations; what the holders did.
    pub held_reads: Vec<HeldRead>,
    pub holds: Vec<HoldRecord>,
    pub orders: Vec<OrderRecord>,
    /// What the page readers saw (their item reads are in `ops` too).
    pub pages: PageRecording,
    /// Every price change sent, for the price-range pages' membership (`pages::check_ranges`),
    /// and the price each product of the run was created with.
    pub price_writes: Vec<PriceWrite>,
    pub first_prices: std::collections::HashMap<i64, i64>,
}

/// What an operation saw: the stamp of the version (history and version, from the `ETag`, so
/// that versions a promoted database hands out again after a failover order above the lost
/// ones: `shopnow_contract::stamps`) and its stock.
struct Observed {
    version: i64,
    stock: i64,
    reserved: i64,
    available: i64,
}

#[derive(Deserialize)]
struct ProductBody {
    stock: i64,
    #[serde(default)]
    reserved: i64,
    #[serde(default)]
    available: i64,
}

/// Runs the workload from `origin`, the time zero of every recorded operation.
pub async fn run(workload: &Workload, origin: Instant, progress: Arc<Progress>) -> Recording {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(64)
        .build()
        .expect("HTTP client");
    let stop = Arc::new(AtomicBool::new(false));
    let origin_wall_ms =
        chrono::Utc::now().timestamp_millis() - origin.elapsed().as_millis() as i64;
    let holders: Vec<_> = (0..workload.holders)
        .map(|n| {
            tokio::spawn(
                Holder {
                    http: client.clone(),
                    targets: workload.targets.clone(),
                    hold_products: workload.hold_products.clone(),
                    duration: workload.duration,
                    origin,
                    origin_wall_ms,
                    progress: progress.clone(),
                    stop: stop.clone(),
                    rng: StdRng::seed_from_u64(workload.seed.wrapping_mul(7_000_003) + n as u64),
                }
                .run(),
            )
        })
        .collect();
    let page_readers: Vec<_> = match &workload.categories {
        None => Vec::new(),
        Some(categories) => (0..workload.page_readers)
            .map(|n| {
                tokio::spawn(
                    PageReader {
                        http: client.clone(),
                        targets: workload.targets.clone(),
                        categories: categories.clone(),
                        products: [&workload.products[..], &workload.hold_products[..]].concat(),
                        hold_products: workload.hold_products.clone(),
                        origin,
                        duration: workload.duration,
                        stop: stop.clone(),
                        progress: progress.clone(),
                        rng: StdRng::seed_from_u64(
                            workload.seed.wrapping_mul(9_000_011) + n as u64,
                        ),
                    }
                    .run(),
                )
            })
            .collect(),
    };
    let tasks: Vec<_> = (0..workload.writers + workload.sql_writers + workload.readers)
        .map(|task| {
            let kind = if task < workload.writers {
                OpKind::Write
            } else if task < workload.writers + workload.sql_writers {
                OpKind::SqlWrite
            } else {
                OpKind::Read
            };
            let client = Client {
                http: client.clone(),
                workload: workload.clone(),
                kind,
                origin,
                stop: stop.clone(),
                progress: progress.clone(),
                // Same seed, same choices: which product, which instance, which change.
                rng: StdRng::seed_from_u64(workload.seed.wrapping_mul(1_000_003) + task as u64),
                price_sent: None,
            };
            tokio::spawn(client.run())
        })
        .collect();

    let mut recording = Recording {
        ops: Vec::new(),
        failures: BTreeMap::new(),
        read_latencies_us: Vec::new(),
        elapsed: Duration::ZERO,
        started_at_unix_ms: origin_wall_ms,
        held_reads: Vec::new(),
        holds: Vec::new(),
        orders: Vec::new(),
        pages: PageRecording::default(),
        price_writes: Vec::new(),
        // Created in this order, each list from its own n = 0 (`create_products`).
        first_prices: [&workload.products, &workload.hold_products]
            .into_iter()
            .flat_map(|ids| ids.iter().enumerate().map(|(n, &id)| (id, first_price(n))))
            .collect(),
    };
    for reader in page_readers {
        if let Ok(read) = reader.await {
            for cause in read.failures {
                *recording.failures.entry(cause).or_insert(0) += 1;
            }
            let pages = &mut recording.pages;
            pages.range_reads.extend(read.range_reads);
            pages.pages += read.pages;
            pages.violations += read.violations;
            pages.examples.extend(read.examples);
            pages.ops.extend(read.ops);
            recording.held_reads.extend(read.held_reads);
        }
    }
    for holder in holders {
        if let Ok(held) = holder.await {
            for (cause, count) in held.failures {
                *recording.failures.entry(cause).or_insert(0) += count;
            }
            recording.holds.extend(held.holds);
            recording.orders.extend(held.orders);
        }
    }
    for task in tasks {
        if let Ok((ops, held_reads, failures, price_writes)) = task.await {
            recording.price_writes.extend(price_writes);
            recording.held_reads.extend(held_reads);
            for (cause, count) in failures {
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

/// One reader or writer of the workload.
struct Client {
    http: reqwest::Client,
    workload: Workload,
    kind: OpKind,
    origin: Instant,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    rng: StdRng,
    /// The price the operation in progress sets, when it is a price change.
    price_sent: Option<i64>,
}

impl Client {
    /// Operates until the deadline or the operation budget; returns what it observed, and its
    /// failed requests by cause.
    async fn run(
        mut self,
    ) -> (
        Vec<Op>,
        Vec<HeldRead>,
        BTreeMap<String, u64>,
        Vec<PriceWrite>,
    ) {
        let deadline = self.origin + self.workload.duration;
        let mut ops = Vec::new();
        let mut price_writes = Vec::new();
        let mut held_reads = Vec::new();
        let mut failures: BTreeMap<String, u64> = BTreeMap::new();
        // Readers read every product; writers change only those no holder uses.
        let choices = match self.kind {
            OpKind::Read => [
                &self.workload.products[..],
                &self.workload.hold_products[..],
            ]
            .concat(),
            _ => self.workload.products.clone(),
        };
        while !self.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let product = choices[self.rng.random_range(0..choices.len())];
            let instance = self.rng.random_range(0..self.workload.targets.len());
            let start = self.origin.elapsed();
            let observed = self.operate(product, instance).await;
            let end = self.origin.elapsed();
            let count = self.progress.ops.fetch_add(1, Ordering::Relaxed) + 1;
            if self.workload.max_ops.is_some_and(|max| count >= max) {
                self.stop.store(true, Ordering::Relaxed);
            }
            let (start_us, end_us) = (start.as_micros() as u64, end.as_micros() as u64);
            if let Some(price) = self.price_sent.take() {
                price_writes.push(PriceWrite {
                    product,
                    start_us,
                    end_us,
                    price,
                    acknowledged: observed.is_ok(),
                });
            }
            match observed {
                Ok(observed) => {
                    ops.push(Op {
                        kind: self.kind,
                        product,
                        start_us,
                        end_us,
                        version: observed.version,
                        stock: observed.stock,
                    });
                    if self.workload.hold_products.contains(&product) {
                        held_reads.push(HeldRead {
                            product,
                            start_us,
                            end_us,
                            stock: observed.stock,
                            reserved: observed.reserved,
                            available: observed.available,
                        });
                    }
                }
                Err(cause) => {
                    // Refused, failed or unanswered (an instance being killed): the
                    // operation's outcome is unknown, so it is not an observation.
                    *failures.entry(cause).or_insert(0) += 1;
                    self.progress.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        (ops, held_reads, failures, price_writes)
    }

    /// One read or one stock adjustment of `product` through instance `instance` (or straight
    /// in Postgres); the version and stock it saw, or the cause of its failure (an HTTP status,
    /// `transport`, or `database`).
    async fn operate(&mut self, product: i64, instance: usize) -> Result<Observed, String> {
        let base = &self.workload.targets[instance];
        let sent = match self.kind {
            OpKind::SqlWrite => return self.change_in_postgres(product).await,
            // With category pages read, a fifth of the writes change a price: pages reorder,
            // and products move in and out of a price range.
            OpKind::Write if self.workload.categories.is_some() && self.rng.random_bool(0.2) => {
                let price = self.rng.random_range(PRICES);
                self.price_sent = Some(price);
                self.http
                    .patch(format!("{base}/v1/products/{product}"))
                    .bearer_auth(&self.workload.admin_token)
                    .json(&serde_json::json!({ "price_cents": price }))
                    .send()
                    .await
            }
            OpKind::Write => {
                let delta = if self.rng.random_bool(0.5) { 1 } else { -1 };
                self.http
                    .post(format!("{base}/v1/products/{product}/stock/adjustments"))
                    .bearer_auth(&self.workload.admin_token)
                    .json(&serde_json::json!({ "delta": delta }))
                    .send()
                    .await
            }
            OpKind::Read => {
                self.http
                    .get(format!("{base}/v1/products/{product}"))
                    .send()
                    .await
            }
        };
        match sent {
            Ok(response) if response.status().is_success() => {
                let stamp = response
                    .headers()
                    .get("etag")
                    .and_then(|etag| etag.to_str().ok())
                    .and_then(stamps::parse_etag)
                    .map(|(history, version)| stamps::stamp(history, version))
                    .ok_or_else(|| "no ETag".to_string())?;
                let body = response
                    .json::<ProductBody>()
                    .await
                    .map_err(|_| "unreadable body".to_string())?;
                Ok(Observed {
                    version: stamp,
                    stock: body.stock,
                    reserved: body.reserved,
                    available: body.available,
                })
            }
            Ok(response) => Err(response.status().as_u16().to_string()),
            Err(_) => Err("transport".to_string()),
        }
    }

    /// A stock change as an ERP sync makes it: one statement, which says nothing of the
    /// version (Postgres raises it), committed on a connection of its own.
    async fn change_in_postgres(&mut self, product: i64) -> Result<Observed, String> {
        let delta: i64 = if self.rng.random_bool(0.5) { 1 } else { -1 };
        let database = self
            .workload
            .database
            .as_ref()
            .expect("SQL writers have a database");
        let (version, history, stock): (i64, i64, i64) = sqlx::query_as(
            "UPDATE products SET stock = stock + $2 WHERE id = $1 \
             RETURNING version, (SELECT shopnow_history()), stock",
        )
        .bind(product)
        .bind(delta)
        .fetch_one(database)
        .await
        .map_err(|_| "database".to_string())?;
        Ok(Observed {
            version: stamps::stamp(history, version),
            stock,
            reserved: 0,
            available: 0,
        })
    }
}
