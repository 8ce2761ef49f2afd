//! The cache outbox: a row per committed product change, written by the table's triggers in the
//! change's own transaction (migration `every_change_reaches_the_cache`), removed once the change
//! is published.

use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};

/// The channel the triggers notify when a writer that is not a shopnow instance changed products.
pub(crate) const CHANNEL: &str = "shopnow_outbox";

/// One change waiting for its publish.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct PendingPublish {
    pub id: i64,
    pub product_id: i64,
    /// True for a change a shopnow instance made (and did not publish); false for any other
    /// writer's.
    pub written_by_instance: bool,
    /// Seconds since the change's transaction began.
    pub age_seconds: f64,
}

/// Removes the rows of changes whose publish succeeded, given as (product id, version), in a
/// transaction that does not wait for its WAL flush: a row that a crash brings back is only
/// published once more, which changes nothing.
pub(crate) async fn forget_published(db: &PgPool, published: &[(i64, i64)]) -> sqlx::Result<()> {
    let (products, versions): (Vec<i64>, Vec<i64>) = published.iter().copied().unzip();
    let mut conn = db.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM cache_outbox WHERE (product_id, version) IN \
         (SELECT * FROM unnest($1::bigint[], $2::bigint[]))",
    )
    .bind(products)
    .bind(versions)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Removes relayed rows, in the relay's transaction, without waiting for the WAL flush (a row
/// that comes back is published again, harmlessly).
pub(crate) async fn delete_ids(conn: &mut PgConnection, ids: &[i64]) -> sqlx::Result<()> {
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM cache_outbox WHERE id = ANY($1)")
        .bind(ids)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Marks the rows of changes that were shown before anyone published them (their writer could
/// not publish, or a read showed them from Postgres) as handed off to the other instances'
/// relays, and wakes them: they take such rows at once (`claim`). A marked row also ends every
/// instance's trust in its product's Redis copy (`handed_off_products`). The first mark stays
/// (its instance's relay leaves the row to the others while that instance waits), and a row
/// marked already is not locked again: a relay may hold it while it tries to publish.
pub(crate) async fn hand_off(
    db: &PgPool,
    instance: &str,
    changes: &[(i64, i64)],
) -> sqlx::Result<()> {
    let (products, versions): (Vec<i64>, Vec<i64>) = changes.iter().copied().unzip();
    let mut conn = db.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query(
        "UPDATE cache_outbox SET handed_off_by = $1, handed_off_at = clock_timestamp() \
         WHERE handed_off_at IS NULL \
           AND (product_id, version) IN (SELECT * FROM unnest($2::bigint[], $3::bigint[]))",
    )
    .bind(instance)
    .bind(products)
    .bind(versions)
    .execute(&mut *tx)
    .await?;
    // Delivered at commit, after the rows are marked.
    sqlx::query("SELECT pg_notify($1, 'hand-off')")
        .bind(CHANNEL)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// How far these changes are from being safe to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Every one was published.
    Published,
    /// Some wait for their publish, but every instance's trust in their Redis copies ended
    /// (`end_trust`): showing them cannot be undone by a read of Redis.
    TrustEnded,
    /// Some wait for their publish, and an instance may still serve the copy before them.
    Pending,
}

/// Where `changes` stand (see `Progress`).
pub(crate) async fn progress(db: &PgPool, changes: &[(i64, i64)]) -> sqlx::Result<Progress> {
    let (products, versions): (Vec<i64>, Vec<i64>) = changes.iter().copied().unzip();
    let (pending, trust_ended): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(trust_ended_at) FROM cache_outbox WHERE (product_id, version) IN \
         (SELECT * FROM unnest($1::bigint[], $2::bigint[]))",
    )
    .bind(products)
    .bind(versions)
    .fetch_one(db)
    .await?;
    Ok(match pending {
        0 => Progress::Published,
        _ if trust_ended == pending => Progress::TrustEnded,
        _ => Progress::Pending,
    })
}

/// Records that every instance's trust in the Redis copies of these handed-off changes has
/// ended (a whole trust lease passed since they were marked), so that the next read that
/// shows them need not wait for that again. Only a shortcut for those reads: a row a relay
/// holds while it tries to publish is skipped, not waited for.
pub(crate) async fn end_trust(db: &PgPool, changes: &[(i64, i64)]) -> sqlx::Result<()> {
    let (products, versions): (Vec<i64>, Vec<i64>) = changes.iter().copied().unzip();
    sqlx::query(
        "UPDATE cache_outbox SET trust_ended_at = clock_timestamp() WHERE id IN ( \
             SELECT id FROM cache_outbox \
             WHERE handed_off_at IS NOT NULL AND trust_ended_at IS NULL \
               AND (product_id, version) IN (SELECT * FROM unnest($1::bigint[], $2::bigint[])) \
             FOR UPDATE SKIP LOCKED)",
    )
    .bind(products)
    .bind(versions)
    .execute(db)
    .await
    .map(|_| ())
}

/// Up to `limit` products with a handed-off row, each with the categories that list it now
/// (their slugs): their Redis copies may be older than a change already shown, and are not
/// served until the row is gone, nor the cached list pages of those categories
/// (`cache::versioned::trust`).
pub(crate) async fn handed_off_products(
    conn: &mut PgConnection,
    limit: i64,
) -> sqlx::Result<Vec<(i64, Vec<String>)>> {
    sqlx::query_as(
        "SELECT marked.product_id, coalesce(p.listed_in_slugs, '{}') \
         FROM (SELECT DISTINCT product_id FROM cache_outbox \
               WHERE handed_off_at IS NOT NULL LIMIT $1) AS marked \
         LEFT JOIN products p ON p.id = marked.product_id",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Locks up to `limit` rows that are the relay's to publish, which no other relay holds:
/// - every change made outside shopnow, at once;
/// - every change another instance handed off (it could not publish), at once;
/// - a change this instance handed off, once its writer stopped waiting (`handoff_wait`):
///   until then the rows are for relays that reach Redis, and one that held them locked
///   through its own failing publishes would make the others skip them;
/// - any other change of an instance once it is older than `grace` (its writer publishes it
///   and removes the row sooner, unless it died).
///
/// The caller publishes them and deletes them in the same transaction.
pub(crate) async fn claim(
    conn: &mut PgConnection,
    instance: &str,
    (grace, handoff_wait): (Duration, Duration),
    limit: i64,
) -> sqlx::Result<Vec<PendingPublish>> {
    sqlx::query_as(
        "SELECT id, product_id, written_by_instance, \
                EXTRACT(EPOCH FROM clock_timestamp() - created_at)::float8 AS age_seconds \
         FROM cache_outbox \
         WHERE NOT written_by_instance \
            OR CASE WHEN handed_off_by IS NULL \
                    THEN created_at < now() - make_interval(secs => $2) \
                    ELSE handed_off_by <> $1 \
                         OR handed_off_at < now() - make_interval(secs => $3) END \
         ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED",
    )
    .bind(instance)
    .bind(grace.as_secs_f64())
    .bind(handoff_wait.as_secs_f64())
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Rows pending, and the age in seconds of the oldest.
pub(crate) async fn backlog(db: &PgPool) -> sqlx::Result<(i64, f64)> {
    sqlx::query_as(
        "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0) \
         FROM cache_outbox",
    )
    .fetch_one(db)
    .await
}

/// Deletes up to `limit` rows older than `retention`; returns how many. For deployments whose
/// instances never publish (`ttl`, `none`): nobody else removes their rows.
pub(crate) async fn delete_older_than(
    conn: &mut PgConnection,
    retention: Duration,
    limit: i64,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM cache_outbox WHERE id IN ( \
             SELECT id FROM cache_outbox WHERE created_at < now() - make_interval(secs => $1) \
             ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(retention.as_secs_f64())
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
