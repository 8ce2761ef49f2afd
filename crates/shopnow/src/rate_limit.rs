//! How many writes one client may send: holds, orders, releases and cancellations, counted per
//! client address over every instance together.
//!
//! GCRA (the generic cell rate algorithm): a client's allowance is `burst` requests at once,
//! refilled at `per_minute`; one number per client (its theoretical arrival time) is all the
//! state. It lives in Redis (`cache/gcra.lua`, one round trip, Redis's clock), so that a client
//! spreading its requests over the instances is counted once. When Redis does not answer, each
//! instance counts alone (the same algorithm, in memory, by its own clock) and says so in the
//! log: limits then hold per instance, a client gets up to one allowance per instance.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
    time::Instant,
};

use crate::cache::ProductCache;

/// `SHOPNOW_RATE_LIMIT_PER_MINUTE`, `SHOPNOW_RATE_LIMIT_BURST`, `SHOPNOW_TRUSTED_PROXIES`.
#[derive(Clone, Debug)]
pub struct RateLimitConfig {
    /// Writes one client address may send per minute, once its burst is spent; 0: no limit.
    pub per_minute: u32,
    /// Writes one client address may send at once.
    pub burst: u32,
    /// Peers whose `X-Forwarded-For` names the client (load balancers, the `deploy/` nginx).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// What counting one request decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub allowed: bool,
    /// Requests the client may still send at once.
    pub left: u64,
    /// Until the allowance is whole again, ms.
    pub whole_in_ms: u64,
    /// Until the next request is allowed, ms (0 when this one was).
    pub wait_ms: u64,
    /// The allowance: requests at once, and the time one whole allowance takes to refill.
    pub burst: u64,
    pub window_ms: u64,
}

pub(crate) struct RateLimiter {
    config: RateLimitConfig,
    cache: ProductCache,
    /// Each client's theoretical arrival time, ms since `started`, while Redis is away.
    local: Mutex<HashMap<String, u64>>,
    started: Instant,
    /// Whether the last count fell back to this instance's own (logged when it changes).
    counting_alone: AtomicBool,
}

/// Local entries at most; past it the table is cleared (a client then starts afresh: the
/// bound keeps a flood of addresses from taking memory).
const MOST_LOCAL_CLIENTS: usize = 100_000;

impl RateLimiter {
    pub(crate) fn new(config: RateLimitConfig, cache: ProductCache) -> Self {
        if config.per_minute > 0 && !cache.strategy().uses_redis() {
            tracing::info!(
                "rate limits count per instance: the cache strategy uses no Redis to count in"
            );
        }
        Self {
            config,
            cache,
            local: Mutex::default(),
            started: Instant::now(),
            counting_alone: AtomicBool::new(false),
        }
    }

    pub(crate) fn trusted_proxies(&self) -> &[ipnet::IpNet] {
        &self.config.trusted_proxies
    }

    /// Counts one write of `client`; `None` when writes are not limited.
    pub(crate) async fn count(&self, client: IpAddr) -> Option<Decision> {
        if self.config.per_minute == 0 {
            return None;
        }
        let interval_ms = (60_000 / u64::from(self.config.per_minute)).max(1);
        let burst = u64::from(self.config.burst.max(1));
        let client = client_key(client);
        let counted = match self.cache.count_request(&client, interval_ms, burst).await {
            Some(Ok((allowed, left, whole_in_ms, wait_ms))) => {
                if self.counting_alone.swap(false, Ordering::Relaxed) {
                    tracing::info!("rate limits count in Redis again, over every instance");
                }
                (allowed, left, whole_in_ms, wait_ms)
            }
            Some(Err(error)) => {
                if !self.counting_alone.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, "Redis does not answer: rate limits count per instance until it does");
                }
                self.count_locally(client, interval_ms, burst)
            }
            None => self.count_locally(client, interval_ms, burst),
        };
        let (allowed, left, whole_in_ms, wait_ms) = counted;
        Some(Decision {
            allowed,
            left,
            whole_in_ms,
            wait_ms,
            burst,
            window_ms: interval_ms * burst,
        })
    }

    fn count_locally(&self, client: String, interval_ms: u64, burst: u64) -> (bool, u64, u64, u64) {
        let now = self.started.elapsed().as_millis() as u64;
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if local.len() >= MOST_LOCAL_CLIENTS && !local.contains_key(&client) {
            local.clear();
        }
        let (decision, next) = gcra(local.get(&client).copied(), now, interval_ms, burst);
        if let Some(next) = next {
            local.insert(client, next);
        }
        decision
    }
}

/// The key of a client address: an IPv6 client by its /64, what one subscriber is given (a
/// client could otherwise take a new address for every request).
fn client_key(client: IpAddr) -> String {
    match client {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let segments = v6.segments();
                format!(
                    "{:x}:{:x}:{:x}:{:x}::/64",
                    segments[0], segments[1], segments[2], segments[3]
                )
            }
        },
    }
}

/// GCRA for one request at `now` (ms) of a client whose theoretical arrival time is `tat`:
/// `(allowed, left, ms until whole, ms to wait)` and the new arrival time when allowed. The
/// same arithmetic as `cache/gcra.lua`.
fn gcra(
    tat: Option<u64>,
    now: u64,
    interval: u64,
    burst: u64,
) -> ((bool, u64, u64, u64), Option<u64>) {
    let tat = tat.unwrap_or(now).max(now);
    let window = interval * burst;
    let next_tat = tat + interval;
    if next_tat - now > window {
        ((false, 0, tat - now, next_tat - now - window), None)
    } else {
        (
            (
                true,
                (window - (next_tat - now)) / interval,
                next_tat - now,
                0,
            ),
            Some(next_tat),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_request_per_interval() {
        let (interval, burst) = (1_000, 3);
        let mut tat = None;
        let mut left = Vec::new();
        for _ in 0..3 {
            let ((allowed, remaining, _, wait), next) = gcra(tat, 10_000, interval, burst);
            assert!(allowed && wait == 0);
            left.push(remaining);
            tat = next;
        }
        assert_eq!(left, [2, 1, 0]);
        let ((allowed, _, whole, wait), next) = gcra(tat, 10_000, interval, burst);
        assert!(!allowed);
        assert_eq!((whole, wait), (3_000, 1_000));
        assert_eq!(next, None, "a refusal changes nothing");
        // One interval later, one more.
        let ((allowed, remaining, _, _), _) = gcra(tat, 11_000, interval, burst);
        assert!(allowed);
        assert_eq!(remaining, 0);
        // A whole window later, the whole burst again.
        let ((allowed, remaining, _, _), _) = gcra(tat, 13_000, interval, burst);
        assert!(allowed);
        assert_eq!(remaining, 2);
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7");
    }
}
