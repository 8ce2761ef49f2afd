//! `none`: every read goes to Postgres. The baseline the other strategies are measured against.

use sqlx::PgPool;

use super::{read_from_database, CacheStatus, ProductRead};
use crate::error::ApiResult;

pub async fn read(db: &PgPool, id: i64) -> ApiResult<ProductRead> {
    Ok(ProductRead {
        found: read_from_database(db, id).await?,
        status: CacheStatus::Bypass,
    })
}
