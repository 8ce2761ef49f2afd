//! What can go wrong with Redis; every caller falls back to Postgres.

use std::time::Duration;

/// A Redis failure, or no answer in time. The caller falls back to Postgres.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis answered something unexpected: {0}")]
    Protocol(String),
    /// The primary applied a publish but too few replicas confirmed it in time: a failover now
    /// could lose it, so it is left to the outbox relay.
    #[error("{acked} of {wanted} replicas confirmed the write in time")]
    Unconfirmed { acked: u32, wanted: u32 },
}

impl CacheError {
    /// Redis could not be reached (refused, dropped or timed-out connections, failed TLS
    /// handshakes), as opposed to an answer that refused the command.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Timeout(_) => true,
            Self::Redis(error) => error.is_io_error() || error.is_connection_dropped(),
            Self::Protocol(_) | Self::Unconfirmed { .. } => false,
        }
    }
}
