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
    /// The product is contended (its writes are at their bound, or its row stayed locked past
    /// the lock timeout): nothing was changed, and a retry shortly may succeed.
    #[error("{message}")]
    Busy {
        message: String,
        /// What the database said, for the operator's log.
        cause: Option<String>,
    },
    /// The database is unreachable, out of connections, or failing over: nothing the client
    /// did; a retry shortly may succeed.
    #[error("{message}")]
    Unavailable {
        message: &'static str,
        /// What the database said, for the operator's log.
        cause: String,
    },
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
    /// A database failure the client should retry (unreachable, overloaded, a lock or statement
    /// timeout, a serialization failure) is `Unavailable` or `Busy`; anything else is a bug.
    fn from(error: sqlx::Error) -> Self {
        let unavailable = |message| Self::Unavailable {
            message,
            cause: error.to_string(),
        };
        match &error {
            sqlx::Error::PoolTimedOut => {
                unavailable("no database connection came free in time; retry shortly")
            }
            // Could not talk to the database at all (a connection refused, cut or garbled on the
            // way: a failover, a restart, a network partition).
            sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => {
                unavailable("the database is unreachable; retry shortly")
            }
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // lock_not_available (lock_timeout), query_canceled (statement_timeout)
                Some("55P03" | "57014") => Self::Busy {
                    message: "the product is locked by another transaction; retry shortly".into(),
                    cause: Some(error.to_string()),
                },
                // serialization_failure, deadlock_detected, too_many_connections, shutdowns,
                // and the connection exceptions of class 08
                Some(code)
                    if matches!(
                        code,
                        "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03"
                    ) || code.starts_with("08") =>
                {
                    unavailable("the database cannot serve this now; retry shortly")
                }
                _ => Self::Internal(error.into()),
            },
            _ => Self::Internal(error.into()),
        }
    }
}
