//! Whether Redis answers, watched in the background, so that an operator learns when Redis stops
//! answering and why (a certificate its authority did not sign, a refused password, a host
//! nobody listens on) and when it answers again: one log line per change, and the
//! `cache_redis_up` gauge. A timeout says little, and a loaded machine may turn the first
//! refusal into one: when a later check fails for another kind of reason (the certificate,
//! the password), that reason is logged too, once. Requests never wait for this: each one
//! that finds Redis failing goes on from Postgres by itself (`X-Cache: bypass`).

use std::time::Duration;

use super::{redis::CacheError, ProductCache};

/// Time between two checks; the first runs at start.
const INTERVAL: Duration = Duration::from_secs(5);

/// Runs until the task is aborted; returns at once for a strategy without Redis.
pub(crate) async fn watch(cache: ProductCache) {
    let up_gauge = metrics::gauge!("cache_redis_up");
    let mut was_up = None;
    // The kind of reason last logged while Redis does not answer.
    let mut reason_logged: Option<ReasonKind> = None;
    let mut interval = tokio::time::interval(INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(reached) = cache.reach_redis().await else {
            return;
        };
        let up = reached.is_ok();
        if up {
            // At start, after an outage (a failover or a restart may have changed the
            // topology) and every interval: a replica added later is noticed too.
            if let Err(error) = cache.observe_replication().await {
                tracing::debug!(%error, "reading redis's replication state failed");
            }
        }
        up_gauge.set(if up { 1.0 } else { 0.0 });
        match reached {
            Err(error) if reason_logged != Some(reason_kind(&error)) => {
                reason_logged = Some(reason_kind(&error));
                tracing::warn!(
                    %error,
                    "redis does not answer: product reads go to Postgres (X-Cache: bypass) until it does"
                )
            }
            Ok(()) if was_up == Some(false) => {
                reason_logged = None;
                tracing::info!("redis answers again")
            }
            _ => {}
        }
        was_up = Some(up);
    }
}

/// Reasons of one kind are logged once: a timeout, or Redis's own kind of error (an IO error
/// such as a refused certificate or connection, an authentication failure, ...).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReasonKind {
    Timeout,
    Redis(redis::ErrorKind),
    Other,
}

fn reason_kind(error: &CacheError) -> ReasonKind {
    match error {
        CacheError::Timeout(_) => ReasonKind::Timeout,
        CacheError::Redis(error) => ReasonKind::Redis(error.kind()),
        CacheError::Protocol(_) | CacheError::Unconfirmed { .. } => ReasonKind::Other,
    }
}
