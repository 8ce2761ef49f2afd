//! Idempotency keys: a retry of an order or a hold finds what its first try made.

use sqlx::PgConnection;

use crate::error::Result;

/// Inserts the key with the request's fingerprint; false when that pair exists already. A
/// concurrent request with the same key and items blocks on the unique index until the first
/// commits (then finds its order) or rolls back (then goes ahead itself). The same key with
/// other items is another request (see the migration `idempotency_key_per_request`).
pub(super) async fn claim_idempotency_key(
    tx: &mut PgConnection,
    key: &str,
    fingerprint: &[u8],
) -> Result<bool> {
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (key, request_hash) VALUES ($1, $2) \
         ON CONFLICT (key, request_hash) DO NOTHING RETURNING key",
    )
    .bind(key)
    .bind(fingerprint)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(inserted.is_some())
}
