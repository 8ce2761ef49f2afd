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
    /// A category change that the tree cannot take: a slug in use, a move under its own
    /// descendant or past the deepest level, a deletion of a category that still lists
    /// something. Nothing was changed.
    #[error("{0}")]
    CategoryConflict(String),
    /// A stock change or an order would take the stock below zero; nothing was changed.
    #[error("{0}")]
    InsufficientStock(String),
    /// An item asks more of a product than one hold or one order may take (its purchase
    /// limit); nothing was changed.
    #[error("{0}")]
    OverPurchaseLimit(String),
    /// Values the client sent that cannot be accepted.
    #[error("{0}")]
    Invalid(String),
    /// The hold expired or was released: its units are no longer set aside.
    #[error("{0}")]
    HoldExpired(String),
    /// The hold became an order already.
    #[error("{0}")]
    HoldConverted(String),
    /// The operation takes a token the request did not present.
    #[error("{0}")]
    Unauthorized(String),
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

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn product_not_found(id: i64) -> Self {
        Self::NotFound(format!("product {id} does not exist"))
    }

    pub fn order_not_found(id: i64) -> Self {
        Self::NotFound(format!("order {id} does not exist"))
    }

    /// Also what a hold answers to a token that is not its own: hold ids are secret-random, but
    /// telling which exist would still help whoever guesses.
    pub fn hold_not_found(id: uuid::Uuid) -> Self {
        Self::NotFound(format!("hold {id} does not exist"))
    }

    pub fn hold_converted(id: uuid::Uuid, order_id: Option<i64>) -> Self {
        Self::HoldConverted(match order_id {
            Some(order) => format!("hold {id} became order {order} already"),
            None => format!("hold {id} became an order already"),
        })
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

/// What kind of temporary trouble a database error is, if it is one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DatabaseTrouble {
    /// One product's row is contended: a lock or statement timeout.
    Busy,
    /// The database as a whole cannot serve now; the message says why, for the client.
    Unavailable(&'static str),
}

/// Sorts a database error into temporary trouble (a retry shortly may succeed) or `None`: a
/// bug or a permanent misconfiguration.
///
/// Temporary, by SQLSTATE: connection exceptions (class 08), insufficient resources (class 53:
/// disk full, out of memory, too many connections, configuration limits), operator
/// intervention (57P: shutdowns, a database dropped under its sessions, a session timed out),
/// system errors (class 58), serialization failures and deadlocks (40001, 40P01), a database
/// that does not accept connections now (55000, `ALLOW_CONNECTIONS false` during maintenance),
/// one that no longer exists under its name (3D000: dropped or renamed, perhaps to be put back
/// from a backup), and a read-only transaction (25006: the address now leads to a standby, as
/// after a failover before the endpoint moved).
pub(crate) fn database_trouble(error: &sqlx::Error) -> Option<DatabaseTrouble> {
    use DatabaseTrouble::{Busy, Unavailable};
    match error {
        sqlx::Error::PoolTimedOut => Some(Unavailable(
            "no database connection came free in time; retry shortly",
        )),
        // Could not talk to the database at all (a connection refused, cut or garbled on the
        // way: a failover, a restart, a network partition).
        sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => {
            Some(Unavailable("the database is unreachable; retry shortly"))
        }
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            match code.as_ref() {
                // lock_not_available (lock_timeout), query_canceled (statement_timeout)
                "55P03" | "57014" => Some(Busy),
                "25006" => Some(Unavailable(
                    "the database is read-only now (a failover in progress?); retry shortly",
                )),
                "55000" | "3D000" | "57P04" => Some(Unavailable(
                    "the database does not accept connections now; retry shortly",
                )),
                "40001" | "40P01" => Some(Unavailable(
                    "the database cannot serve this now; retry shortly",
                )),
                code if ["08", "53", "57P", "58"]
                    .iter()
                    .any(|class| code.starts_with(class)) =>
                {
                    Some(Unavailable(
                        "the database cannot serve this now; retry shortly",
                    ))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

impl From<sqlx::Error> for Error {
    /// Temporary database trouble (`database_trouble`) is `Unavailable` or `Busy`; anything
    /// else is a bug.
    fn from(error: sqlx::Error) -> Self {
        match database_trouble(&error) {
            Some(DatabaseTrouble::Busy) => Self::Busy {
                message: "the product is locked by another transaction; retry shortly".into(),
                cause: Some(error.to_string()),
            },
            Some(DatabaseTrouble::Unavailable(message)) => Self::Unavailable {
                message,
                cause: error.to_string(),
            },
            None => Self::Internal(error.into()),
        }
    }
}
