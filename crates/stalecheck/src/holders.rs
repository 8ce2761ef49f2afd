//! The holders of the workload: shoppers who hold stock for a second or two, then release the
//! hold, turn it into an order (and cancel some of those), or walk away and let it lapse.
//! Everything they send is recorded for `reservations::check`.

use std::{
    collections::BTreeMap,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use rand::{rngs::StdRng, Rng};
use serde::Deserialize;

use crate::{
    progress::Progress,
    reservations::{HoldRecord, OrderRecord},
};

/// How long a hold lasts: short, so that many lapse while the run reads them.
const TTL_SECONDS: [u64; 2] = [1, 2];

/// How long a holder whose request failed waits before its next one, in ms.
const REFUSED_PAUSE_MS: std::ops::Range<u64> = 50..250;

#[derive(Deserialize)]
struct HoldReceipt {
    id: String,
    access_token: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Deserialize)]
struct OrderReceipt {
    id: i64,
    access_token: String,
}

/// What one holder did, and its failed requests by cause.
#[derive(Default)]
pub struct Held {
    pub holds: Vec<HoldRecord>,
    pub orders: Vec<OrderRecord>,
    pub failures: BTreeMap<String, u64>,
}

pub struct Holder {
    pub http: reqwest::Client,
    /// The instances (or load balancer) to send to, and the products only holders change.
    pub targets: Vec<String>,
    pub hold_products: Vec<i64>,
    pub duration: Duration,
    pub origin: Instant,
    /// The wall clock at `origin`, in ms since the epoch: the servers' `expires_at` in the
    /// run's time.
    pub origin_wall_ms: i64,
    pub progress: Arc<Progress>,
    pub stop: Arc<std::sync::atomic::AtomicBool>,
    pub rng: StdRng,
}

impl Holder {
    pub async fn run(mut self) -> Held {
        let deadline = self.origin + self.duration;
        let mut held = Held::default();
        while !self.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            self.progress.ops.fetch_add(1, Ordering::Relaxed);
            let failed_before: u64 = held.failures.values().sum();
            self.hold_once(&mut held).await;
            if held.failures.values().sum::<u64>() > failed_before {
                // A shopper refused (503, sold out, an instance away) tries again a moment
                // later, not in a loop that would take every connection the instances have.
                let pause = self.rng.random_range(REFUSED_PAUSE_MS);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
        held
    }

    fn now_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }

    fn target(&mut self) -> String {
        let targets = &self.targets;
        targets[self.rng.random_range(0..targets.len())].clone()
    }

    fn failed(&self, held: &mut Held, cause: String) {
        self.progress.failed.fetch_add(1, Ordering::Relaxed);
        *held.failures.entry(format!("hold {cause}")).or_insert(0) += 1;
    }

    async fn hold_once(&mut self, held: &mut Held) {
        let products = &self.hold_products;
        let product = products[self.rng.random_range(0..products.len())];
        let quantity = self.rng.random_range(1..=2);
        let ttl = TTL_SECONDS[self.rng.random_range(0..TTL_SECONDS.len())];
        let target = self.target();
        let sent_us = self.now_us();
        let answer = self
            .http
            .post(format!("{target}/v1/holds"))
            .json(&serde_json::json!({
                "items": [{"product_id": product, "quantity": quantity}],
                "ttl_seconds": ttl,
            }))
            .send()
            .await;
        let done_us = self.now_us();
        let mut record = HoldRecord {
            id: None,
            product,
            quantity,
            sent_us,
            acked_us: None,
            // Unknown outcome: the latest it could expire (its clock started before the answer).
            expires_us: done_us + Duration::from_secs(ttl + 1).as_micros() as u64,
            end_sent_us: None,
            end_acked_us: None,
        };
        let receipt = match answer {
            Ok(response) if response.status().as_u16() == 201 => {
                match response.json::<HoldReceipt>().await {
                    Ok(receipt) => receipt,
                    Err(_) => {
                        self.failed(held, "unreadable".into());
                        held.holds.push(record);
                        return;
                    }
                }
            }
            // Refused (409, 503...): set nothing aside.
            Ok(response) if response.status().is_client_error() || response.status() == 503 => {
                self.failed(held, response.status().as_u16().to_string());
                return;
            }
            Ok(response) => {
                self.failed(held, response.status().as_u16().to_string());
                held.holds.push(record);
                return;
            }
            Err(_) => {
                self.failed(held, "transport".into());
                held.holds.push(record);
                return;
            }
        };
        record.acked_us = Some(done_us);
        record.id = Some(receipt.id.clone());
        let expires_ms = receipt.expires_at.timestamp_millis() - self.origin_wall_ms;
        record.expires_us = (expires_ms.max(0) as u64) * 1000;
        match self.rng.random_range(0..100) {
            0..35 => self.release(&receipt, &mut record, held).await,
            35..70 => self.convert(&receipt, &mut record, held).await,
            // Walks away: the hold lapses.
            _ => {}
        }
        held.holds.push(record);
    }

    async fn release(&mut self, receipt: &HoldReceipt, record: &mut HoldRecord, held: &mut Held) {
        let target = self.target();
        record.end_sent_us = Some(self.now_us());
        let answer = self
            .http
            .delete(format!("{target}/v1/holds/{}", receipt.id))
            .bearer_auth(&receipt.access_token)
            .send()
            .await;
        match answer {
            Ok(response) if response.status().is_success() => {
                record.end_acked_us = Some(self.now_us());
            }
            Ok(response) => self.failed(held, response.status().as_u16().to_string()),
            Err(_) => self.failed(held, "transport".into()),
        }
    }

    async fn convert(&mut self, receipt: &HoldReceipt, record: &mut HoldRecord, held: &mut Held) {
        let target = self.target();
        let sent_us = self.now_us();
        record.end_sent_us = Some(sent_us);
        let answer = self
            .http
            .post(format!("{target}/v1/orders"))
            .bearer_auth(&receipt.access_token)
            .json(&serde_json::json!({ "hold_id": receipt.id }))
            .send()
            .await;
        let mut order = OrderRecord {
            id: None,
            hold: uuid::Uuid::try_parse(&receipt.id).ok(),
            product: record.product,
            quantity: record.quantity,
            sent_us,
            acked_us: None,
            cancel_sent_us: None,
            cancel_acked_us: None,
        };
        let placed = match answer {
            Ok(response) if response.status().as_u16() == 201 => {
                let acked = self.now_us();
                record.end_acked_us = Some(acked);
                order.acked_us = Some(acked);
                response.json::<OrderReceipt>().await.ok()
            }
            // The hold lapsed first (or the answer said no): no order, and the hold ends by
            // its expiry.
            Ok(response) if response.status().as_u16() == 409 => {
                self.failed(held, "409".into());
                return;
            }
            Ok(response) => {
                self.failed(held, response.status().as_u16().to_string());
                None
            }
            Err(_) => {
                self.failed(held, "transport".into());
                None
            }
        };
        order.id = placed.as_ref().map(|placed| placed.id);
        if let Some(placed) = placed.filter(|_| self.rng.random_bool(0.5)) {
            let target = self.target();
            order.cancel_sent_us = Some(self.now_us());
            let answer = self
                .http
                .post(format!("{target}/v1/orders/{}/cancel", placed.id))
                .bearer_auth(&placed.access_token)
                .send()
                .await;
            match answer {
                Ok(response) if response.status().is_success() => {
                    order.cancel_acked_us = Some(self.now_us());
                }
                Ok(response) => self.failed(held, response.status().as_u16().to_string()),
                Err(_) => self.failed(held, "transport".into()),
            }
        }
        held.orders.push(order);
    }
}
