//! The consistency sampler: checks a few cached products per second against Postgres, so an
//! operator can see (and alert on) the cache being wrong, as Meta's Polaris does for its caches.
//!
//! For each sampled product it reads the cached copy first, then the row. The copy is wrong if
//! - its version is newer than the row's (nothing may publish a version Postgres lacks);
//! - its version equals the row's but its content differs (one version, one content);
//! - its version is older than the row's and still is after the outbox repair bound: a write in
//!   flight may legitimately be between commit and publish, so an older copy is re-checked
//!   after the bound before it counts.
//!
//! A wrong copy is counted (`cache_consistency_violations_total`), logged, and dropped: the next
//! read fills it from Postgres under a lease. Rewriting it from the row read here could bring
//! back a version older than one acknowledged while the sampler worked.

use std::{sync::atomic::Ordering, time::Duration};

use rand::Rng;

use crate::{
    cache::{CachedCopy, VersionedBody},
    catalog::Catalog,
    db,
    hooks::PublishSite,
    model::ProductState,
    relay,
};

/// Runs until the task is aborted, checking `rate` random products per second.
pub(crate) async fn run(catalog: Catalog, rate: u32) {
    // Both series exist from the start, at 0: a ratio of violations to checks (the consistency
    // SLO's recording rules) needs the violations series before the first violation.
    let strategy = catalog.cache().strategy().as_str();
    metrics::counter!("cache_consistency_checks_total", "strategy" => strategy).increment(0);
    metrics::counter!("cache_consistency_violations_total", "strategy" => strategy).increment(0);
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(error) = sample(&catalog, rate).await {
            tracing::debug!(%error, "consistency sample failed");
        }
    }
}

async fn sample(catalog: &Catalog, rate: u32) -> anyhow::Result<()> {
    let max_id = db::products::max_id(&mut *catalog.db().acquire().await?).await?;
    let Some(max_id) = max_id else {
        return Ok(());
    };
    let ids: Vec<i64> = {
        let mut rng = rand::rng();
        (0..rate).map(|_| rng.random_range(1..=max_id)).collect()
    };
    for id in ids {
        check(catalog, id).await?;
    }
    Ok(())
}

/// What a comparison of a cached copy with the row found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Consistent,
    /// Older than the row: fine if a publish is in flight; re-check after the repair bound.
    Behind,
    Wrong(&'static str),
}

/// Compares a cached copy with the row read after it, by (history, version): a copy of a write
/// the database lost in a failover is behind the promoted database's row, whatever its number.
/// A strategy whose copies do not carry the history (`with_history` false) is compared by
/// version alone.
pub(crate) fn compare(copy: &CachedCopy, row: &ProductState, with_history: bool) -> Verdict {
    let row_stamp = row_stamp(row, with_history);
    if copy.stamp() > row_stamp {
        return Verdict::Wrong("the cache holds a version Postgres does not have");
    }
    if copy.stamp() < row_stamp {
        return Verdict::Behind;
    }
    // Judged at the row's time, the copy must show what the row shows, `reserved` included.
    let expected = VersionedBody::of_state(row).map(|body| body.body);
    let read_at_ms = match row {
        ProductState::Live(product) => product.read_at_ms,
        ProductState::Deleted { .. } => 0,
    };
    if copy.body_at(read_at_ms).map(|body| body.body) == expected {
        Verdict::Consistent
    } else {
        Verdict::Wrong("one version with two different contents")
    }
}

fn row_stamp(row: &ProductState, with_history: bool) -> i64 {
    match with_history {
        true => row.stamp(),
        false => row.version(),
    }
}

async fn check(catalog: &Catalog, id: i64) -> anyhow::Result<()> {
    let cache = catalog.cache();
    let Some(copy) = cache.peek(id).await? else {
        return Ok(()); // not cached: nothing to check
    };
    let mut conn = catalog.db().acquire().await?;
    let Some(row) = db::products::load_state(&mut conn, id).await? else {
        return Ok(());
    };
    drop(conn);
    let with_history = cache.carries_history();
    let verdict = match compare(&copy, &row, with_history) {
        Verdict::Behind => {
            // Give an in-flight publish, or the relay, the time the design promises.
            tokio::time::sleep(relay::REPAIR_BOUND).await;
            match cache.peek(id).await? {
                Some(later) if later.stamp() < row_stamp(&row, with_history) => {
                    Verdict::Wrong("older than Postgres beyond the repair bound")
                }
                _ => Verdict::Consistent,
            }
        }
        verdict => verdict,
    };
    let stats = cache.stats();
    stats.consistency_checks.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("cache_consistency_checks_total", "strategy" => cache.strategy().as_str())
        .increment(1);
    if let Verdict::Wrong(reason) = verdict {
        stats.consistency_violations.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("cache_consistency_violations_total", "strategy" => cache.strategy().as_str())
            .increment(1);
        tracing::error!(
            product = id,
            cached = copy.version,
            cached_history = copy.history,
            postgres = row.version(),
            postgres_history = row.history(),
            reason,
            "cache inconsistency"
        );
        catalog
            .hooks()
            .before_publish(PublishSite::Repair, id)
            .await;
        // Dropped, never rewritten: the row read above may be older than a version
        // acknowledged since. The next read fills the copy under a lease.
        if let Err(error) = cache.repair(id).await {
            tracing::warn!(product = id, %error, "could not drop a wrong cached copy");
        }
        stats.consistency_repairs.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Product;

    fn product(version: i64, stock: i64) -> ProductState {
        ProductState::Live(Product {
            id: 1,
            sku: "S".into(),
            name: "N".into(),
            description: String::new(),
            price_cents: 1,
            currency: "USD".into(),
            stock,
            purchase_limit: None,
            categories: Vec::new(),
            listed_in: Vec::new(),
            version,
            reserved: 0,
            available: stock,
            updated_at: chrono::DateTime::UNIX_EPOCH,
            history: 0,
            reservations: Default::default(),
            read_at_ms: 0,
            cannot_enter_pages: false,
        })
    }

    fn copy_of(state: &ProductState) -> CachedCopy {
        CachedCopy {
            history: state.history(),
            version: state.version(),
            payload: VersionedBody::of_state(state).map(|b| b.body),
            reservations: Default::default(),
            rendered_at_ms: 0,
        }
    }

    #[test]
    fn verdicts() {
        let row = product(3, 10);
        assert_eq!(compare(&copy_of(&row), &row, true), Verdict::Consistent);
        assert_eq!(
            compare(&copy_of(&product(2, 11)), &row, true),
            Verdict::Behind
        );
        assert!(matches!(
            compare(&copy_of(&product(4, 9)), &row, true),
            Verdict::Wrong(_)
        ));
        assert!(matches!(
            compare(&copy_of(&product(3, 99)), &row, true),
            Verdict::Wrong(_)
        ));
        let deleted = ProductState::Deleted {
            id: 1,
            version: 4,
            history: 0,
        };
        assert_eq!(
            compare(&copy_of(&deleted), &deleted, true),
            Verdict::Consistent
        );
        assert!(matches!(
            compare(&copy_of(&product(4, 9)), &deleted, true),
            Verdict::Wrong(_)
        ));
        // A lost write's copy (version 7 of history 0) is behind the promoted database's
        // version 5 of history 1: repaired, not taken for the newer one.
        let mut promoted = product(5, 1);
        if let ProductState::Live(p) = &mut promoted {
            p.history = 1;
        }
        assert_eq!(
            compare(&copy_of(&product(7, 0)), &promoted, true),
            Verdict::Behind
        );
    }
}
