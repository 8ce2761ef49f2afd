//! Category pages in the stale check: page readers read list pages of the run's categories, as
//! a shop's category grid does, and every item on a page counts as a read of its product (the
//! same checks as a product read: `history`, and `reservations` for held products). Each page
//! is also checked as a page:
//! - **membership**: the run's products never leave its categories and never run out, so every
//!   one of them is on the full pages (by id, and `in_stock=true` by price), once;
//! - **filters**: no item on an `in_stock=true` page shows `available` 0, none on a price-range
//!   page shows a price outside it, none is outside the page's category;
//! - **order**: the items are in the page's sort, by the prices they show (ties by id).
//!
//! Writers also change prices (`workload`), so that pages reorder and products move in and out
//! of the price range while pages are read.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use rand::{rngs::StdRng, Rng};
use serde::Deserialize;
use serde_json::json;
use shopnow_contract::stamps;

use crate::{
    history::{Op, OpKind},
    progress::Progress,
    reservations::HeldRead,
};

/// Prices a writer sets, and the range a range page asks for (about two fifths of them).
pub const PRICES: std::ops::Range<i64> = 100..600;
const RANGE: (i64, i64) = (200, 400);

/// The price product `n` of a run is created with, inside `PRICES`.
pub fn first_price(n: usize) -> i64 {
    PRICES.start + (n as i64 * 37) % (PRICES.end - PRICES.start)
}

/// The categories of a run: a root, and a leaf under it that every product of the run is in.
#[derive(Debug, Clone)]
pub struct RunCategories {
    pub root: String,
    pub leaf: String,
}

/// Creates the run's two categories; `None` when the instances have no categories (an older
/// build): the run then reads no pages.
pub async fn create_categories(target: &str, token: &str) -> anyhow::Result<Option<RunCategories>> {
    let client = reqwest::Client::new();
    let run = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let categories = RunCategories {
        root: format!("stalecheck-{run}"),
        leaf: format!("stalecheck-{run}-items"),
    };
    for (slug, parent) in [
        (&categories.root, None),
        (&categories.leaf, Some(&categories.root)),
    ] {
        let response = client
            .post(format!("{target}/v1/categories"))
            .bearer_auth(token)
            .json(&json!({"slug": slug, "name": slug, "parent": parent}))
            .send()
            .await?;
        if matches!(
            response.status(),
            reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::METHOD_NOT_ALLOWED
        ) {
            return Ok(None);
        }
        anyhow::ensure!(
            response.status().is_success(),
            "creating category {slug} answered {}",
            response.status()
        );
    }
    Ok(Some(categories))
}

/// One kind of page the readers ask for.
#[derive(Debug, Clone, Copy)]
enum Listing {
    /// The root category by id, 200 at most: every product of the run, once, in id order.
    AllById,
    /// The root, in stock, by price: every product of the run (none runs out), by price.
    InStockByPrice,
    /// The leaf, by price descending, 50 at most.
    LeafByPriceDescending,
    /// The root, prices in `RANGE`, by price.
    PriceRange,
}

const LISTINGS: [Listing; 4] = [
    Listing::AllById,
    Listing::InStockByPrice,
    Listing::LeafByPriceDescending,
    Listing::PriceRange,
];

impl Listing {
    fn query(self, categories: &RunCategories) -> String {
        let (root, leaf) = (&categories.root, &categories.leaf);
        match self {
            Self::AllById => format!("category={root}&sort=id&limit=200"),
            Self::InStockByPrice => format!("category={root}&in_stock=true&sort=price&limit=200"),
            Self::LeafByPriceDescending => format!("category={leaf}&sort=-price&limit=50"),
            Self::PriceRange => format!(
                "category={root}&min_price={}&max_price={}&sort=price&limit=200",
                RANGE.0, RANGE.1
            ),
        }
    }

    /// Whether every product of the run must be on the page.
    fn lists_every_product(self) -> bool {
        matches!(self, Self::AllById | Self::InStockByPrice)
    }
}

#[derive(Deserialize)]
struct Page {
    items: Vec<Item>,
    etags: Vec<String>,
}

#[derive(Deserialize)]
struct Item {
    id: i64,
    price_cents: i64,
    stock: i64,
    #[serde(default)]
    reserved: i64,
    available: i64,
    #[serde(default)]
    listed_in: Vec<String>,
}

/// What the page readers saw.
#[derive(Default)]
pub struct PageRecording {
    /// Every item of every page, as a read of its product.
    pub ops: Vec<Op>,
    pub held_reads: Vec<HeldRead>,
    pub pages: u64,
    /// Pages whose membership, filters or order were wrong, and the first few of them.
    pub violations: u64,
    pub examples: Vec<String>,
    pub failures: Vec<String>,
    /// Reads of the price-range page: when, and which products it listed.
    pub range_reads: Vec<RangeRead>,
}

/// One read of the price-range page (200 at most: every product of the run fits).
#[derive(Debug, Clone)]
pub struct RangeRead {
    pub start_us: u64,
    pub end_us: u64,
    pub shown: Vec<i64>,
}

/// Which products a range page must list: each whose price changes sent before the page's
/// answer were all acknowledged before its request, the last of them (or its first price)
/// inside the range; and which it must not: the same, outside. A product with a change in
/// flight, an unanswered one, or two last changes that overlap is left out of the check; so is
/// one whose last change a Postgres failover may have lost (acknowledged within `lossy`, the
/// failovers' spans from a second before each, when the failover began before the page's
/// answer: a promoted standby lacks the primary's last commits, which the design allows).
/// Returns the products checked, and the reads that got one wrong with the first few.
pub fn check_ranges(
    reads: &[RangeRead],
    writes: &[crate::workload::PriceWrite],
    first_prices: &std::collections::HashMap<i64, i64>,
    lossy: &[(u64, u64)],
) -> (u64, u64, Vec<String>) {
    let mut by_product: std::collections::HashMap<i64, Vec<&crate::workload::PriceWrite>> =
        std::collections::HashMap::new();
    for write in writes {
        by_product.entry(write.product).or_default().push(write);
    }
    for writes in by_product.values_mut() {
        writes.sort_by_key(|write| write.end_us);
    }
    let (mut checked, mut wrong, mut examples) = (0, 0, Vec::new());
    for read in reads {
        let shown: HashSet<i64> = read.shown.iter().copied().collect();
        let mut problems = Vec::new();
        for (&product, &first_price) in first_prices {
            let sent: Vec<&&crate::workload::PriceWrite> = by_product
                .get(&product)
                .map(|writes| writes.iter().filter(|w| w.start_us < read.end_us).collect())
                .unwrap_or_default();
            if sent
                .iter()
                .any(|w| !w.acknowledged || w.end_us >= read.start_us)
            {
                continue;
            }
            let (price, acknowledged_us) = match sent.as_slice() {
                [] => (first_price, 0),
                [.., before, last] if before.end_us > last.start_us => continue,
                [.., last] => (last.price, last.end_us),
            };
            let may_be_lost = lossy
                .iter()
                .any(|&(from, to)| from < read.end_us && (from..=to).contains(&acknowledged_us));
            if may_be_lost {
                continue;
            }
            checked += 1;
            let belongs = (RANGE.0..=RANGE.1).contains(&price);
            if belongs != shown.contains(&product) {
                problems.push(format!(
                    "product {product} at {price} is {} the range page",
                    if belongs {
                        "missing from"
                    } else {
                        "wrongly on"
                    }
                ));
            }
        }
        if !problems.is_empty() {
            wrong += 1;
            if examples.len() < 10 {
                examples.push(format!(
                    "range page at {} us: {}",
                    read.start_us,
                    problems.join("; ")
                ));
            }
        }
    }
    (checked, wrong, examples)
}

pub struct PageReader {
    pub http: reqwest::Client,
    pub targets: Vec<String>,
    pub categories: RunCategories,
    /// Every product of the run, and those only holders change.
    pub products: Vec<i64>,
    pub hold_products: Vec<i64>,
    pub origin: Instant,
    pub duration: Duration,
    pub stop: Arc<AtomicBool>,
    pub progress: Arc<Progress>,
    pub rng: StdRng,
}

impl PageReader {
    pub async fn run(mut self) -> PageRecording {
        let mut recording = PageRecording::default();
        let deadline = self.origin + self.duration;
        let products: HashSet<i64> = self.products.iter().copied().collect();
        while !self.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let listing = LISTINGS[self.rng.random_range(0..LISTINGS.len())];
            let target = &self.targets[self.rng.random_range(0..self.targets.len())];
            let url = format!("{target}/v1/products?{}", listing.query(&self.categories));
            let start_us = self.origin.elapsed().as_micros() as u64;
            let answer = self.http.get(&url).send().await;
            let page = match answer {
                Ok(response) if response.status().is_success() => response
                    .json::<Page>()
                    .await
                    .map_err(|_| "unreadable page".to_string()),
                Ok(response) => Err(response.status().as_u16().to_string()),
                Err(_) => Err("transport".to_string()),
            };
            let end_us = self.origin.elapsed().as_micros() as u64;
            self.progress.ops.fetch_add(1, Ordering::Relaxed);
            let page = match page {
                Ok(page) => page,
                Err(cause) => {
                    self.progress.failed.fetch_add(1, Ordering::Relaxed);
                    recording.failures.push(cause);
                    continue;
                }
            };
            recording.pages += 1;
            if matches!(listing, Listing::PriceRange) {
                recording.range_reads.push(RangeRead {
                    start_us,
                    end_us,
                    shown: page.items.iter().map(|item| item.id).collect(),
                });
            }
            if let Err(problem) = self.check(listing, &page, &products) {
                recording.violations += 1;
                if recording.examples.len() < 10 {
                    recording
                        .examples
                        .push(format!("{url} at {start_us} us: {problem}"));
                }
            }
            for (item, etag) in page.items.iter().zip(&page.etags) {
                if !products.contains(&item.id) {
                    continue;
                }
                let Some((history, version)) = stamps::parse_etag(etag) else {
                    continue;
                };
                recording.ops.push(Op {
                    kind: OpKind::Read,
                    product: item.id,
                    start_us,
                    end_us,
                    version: stamps::stamp(history, version),
                    stock: item.stock,
                });
                if self.hold_products.contains(&item.id) {
                    recording.held_reads.push(HeldRead {
                        product: item.id,
                        start_us,
                        end_us,
                        stock: item.stock,
                        reserved: item.reserved,
                        available: item.available,
                    });
                }
            }
        }
        recording
    }

    /// The page's membership, filters and order, as the page shows them.
    fn check(&self, listing: Listing, page: &Page, products: &HashSet<i64>) -> Result<(), String> {
        if page.etags.len() != page.items.len() {
            return Err(format!(
                "{} items, {} etags",
                page.items.len(),
                page.etags.len()
            ));
        }
        let scope = match listing {
            Listing::LeafByPriceDescending => &self.categories.leaf,
            _ => &self.categories.root,
        };
        for item in &page.items {
            if !item.listed_in.contains(scope) {
                return Err(format!("product {} is not in {scope}", item.id));
            }
            if matches!(listing, Listing::InStockByPrice) && item.available <= 0 {
                return Err(format!(
                    "product {} shows available {} on an in-stock page",
                    item.id, item.available
                ));
            }
            if matches!(listing, Listing::PriceRange)
                && !(RANGE.0..=RANGE.1).contains(&item.price_cents)
            {
                return Err(format!(
                    "product {} shows price {} outside {RANGE:?}",
                    item.id, item.price_cents
                ));
            }
        }
        for pair in page.items.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let ordered = match listing {
                Listing::AllById => a.id < b.id,
                Listing::InStockByPrice | Listing::PriceRange => {
                    (a.price_cents, a.id) < (b.price_cents, b.id)
                }
                Listing::LeafByPriceDescending => (a.price_cents, a.id) > (b.price_cents, b.id),
            };
            if !ordered {
                return Err(format!(
                    "products {} ({}) and {} ({}) out of order",
                    a.id, a.price_cents, b.id, b.price_cents
                ));
            }
        }
        if listing.lists_every_product() && products.len() <= 200 {
            let shown: HashSet<i64> = page.items.iter().map(|item| item.id).collect();
            if let Some(missing) = products.iter().find(|id| !shown.contains(id)) {
                return Err(format!("product {missing} is missing"));
            }
            if shown.len() != page.items.len() {
                return Err("a product is listed twice".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::workload::PriceWrite;

    fn write(product: i64, start_us: u64, end_us: u64, price: i64) -> PriceWrite {
        PriceWrite {
            product,
            start_us,
            end_us,
            price,
            acknowledged: true,
        }
    }

    fn read(start_us: u64, end_us: u64, shown: &[i64]) -> RangeRead {
        RangeRead {
            start_us,
            end_us,
            shown: shown.to_vec(),
        }
    }

    #[test]
    fn a_range_page_must_follow_the_last_acknowledged_price() {
        // Product 1 starts in the range, 2 outside; 1 leaves it at 10..20, 2 enters at 30..40.
        let first = HashMap::from([(1, 250), (2, 500)]);
        let writes = [write(1, 10, 20, 550), write(2, 30, 40, 300)];
        let right = [read(0, 5, &[1]), read(25, 28, &[]), read(50, 60, &[2])];
        assert_eq!(check_ranges(&right, &writes, &first, &[]).1, 0);
        // Still listed after its change out was acknowledged; not yet listed after 2's in.
        let (checked, wrong, examples) = check_ranges(
            &[read(25, 28, &[1]), read(50, 60, &[])],
            &writes,
            &first,
            &[],
        );
        assert_eq!((checked, wrong), (4, 2), "{examples:?}");
        // A read racing a change checks nothing of that product.
        let (checked, wrong, _) = check_ranges(&[read(15, 18, &[])], &writes, &first, &[]);
        assert_eq!((checked, wrong), (1, 0));
        // A failover from 35 may have lost 2's change (acknowledged at 40): unknown after it.
        let (checked, wrong, _) = check_ranges(&[read(50, 60, &[])], &writes, &first, &[(35, 45)]);
        assert_eq!((checked, wrong), (1, 0));
        // An unanswered change leaves its product unknown from then on.
        let lost = [PriceWrite {
            acknowledged: false,
            ..write(2, 30, 40, 300)
        }];
        assert_eq!(
            check_ranges(&[read(50, 60, &[1])], &lost, &first, &[]),
            (1, 0, vec![])
        );
    }
}
