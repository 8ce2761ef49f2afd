//! What can go wrong below the HTTP layer, in the domain's own words. `http::error` turns each
//! kind into a status and a code; nothing here knows about HTTP.

/// A failure of a catalog or order operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such product or order (or a deleted product).
    #[error("{0}")]
    NotFound(String),
    /// Another live product has this SKU.
    #[error("a product with sku {0:?} already exists")]
    DuplicateSku(String),
    /// A stock change or an order would take the stock below zero; nothing was changed.
    #[error("{0}")]
    InsufficientStock(String),
    /// Values the client sent that cannot be accepted.
    #[error("{0}")]
    Invalid(String),
    /// An Idempotency-Key sent again with a different order.
    #[error("this Idempotency-Key was used for a different order; use a new key")]
    IdempotencyKeyReused,
    /// Anything the client cannot fix: a bug, or a dependency failing in an unexpected way.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn product_not_found(id: i64) -> Self {
        Self::NotFound(format!("product {id} does not exist"))
    }

    pub fn order_not_found(id: i64) -> Self {
        Self::NotFound(format!("order {id} does not exist"))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(error.into())
    }
}
