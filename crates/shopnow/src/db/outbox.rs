//! The cache outbox: a row per committed product change whose publish is not confirmed yet.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};

use crate::model::ProductState;

/// One pending publish.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingPublish {
    pub id: i64,
    pub product_id: i64,
}

/// Records the changes of the current transaction; returns the row ids to remove after publish.
pub async fn record(conn: &mut PgConnection, states: &[ProductState]) -> sqlx::Result<Vec<i64>> {
    let product_ids: Vec<i64> = states.iter().map(ProductState::id).collect();
    let versions: Vec<i64> = states.iter().map(ProductState::version).collect();
    sqlx::query_scalar(
        "INSERT INTO cache_outbox (product_id, version) \
         SELECT * FROM unnest($1::bigint[], $2::bigint[]) RETURNING id",
    )
    .bind(product_ids)
    .bind(versions)
    .fetch_all(conn)
    .await
}

/// Removes rows whose publish succeeded.
pub async fn remove(db: &PgPool, ids: &[i64]) -> sqlx::Result<()> {
    let mut conn = db.acquire().await?;
    delete_ids(&mut conn, ids).await
}

pub async fn delete_ids(conn: &mut PgConnection, ids: &[i64]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM cache_outbox WHERE id = ANY($1)")
        .bind(ids)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Locks up to `limit` rows older than `grace` that no other relay holds. The caller publishes
/// them and deletes them in the same transaction.
pub async fn claim_left_behind(
    conn: &mut PgConnection,
    grace: Duration,
    limit: i64,
) -> sqlx::Result<Vec<PendingPublish>> {
    sqlx::query_as(
        "SELECT id, product_id FROM cache_outbox \
         WHERE created_at < now() - make_interval(secs => $1) \
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(grace.as_secs_f64())
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Rows pending, and the age in seconds of the oldest.
pub async fn backlog(db: &PgPool) -> sqlx::Result<(i64, f64)> {
    sqlx::query_as(
        "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0) \
         FROM cache_outbox",
    )
    .fetch_one(db)
    .await
}
