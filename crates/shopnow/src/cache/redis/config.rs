//! Where Redis is, how long to wait for it, and the TLS files of `rediss://` connections.
//!
//! `rediss://` URLs speak TLS (rustls), trusting the platform's root certificates or the
//! bundle in `SHOPNOW_REDIS_TLS_CA_FILE`, and presenting a client certificate when
//! `SHOPNOW_REDIS_TLS_CERT_FILE`/`_KEY_FILE` name one. A user and password come from the URL
//! (`rediss://user:password@host:port`); no error or log line here ever carries the URL.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use redis::{ClientTlsConfig, TlsCertificates};

/// Where Redis is and how long to wait for it.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// One or more `redis://` URLs.
    pub urls: Vec<String>,
    /// Talk the Redis Cluster protocol to `urls` (`SHOPNOW_REDIS_CLUSTER=1`).
    pub cluster: bool,
    /// How long a product read or publish waits for Redis before it goes on from Postgres.
    pub timeout: Duration,
    /// Replicas a publish must reach before it counts (`WAIT`); 0 for a Redis without
    /// replicas. See `replication`.
    pub replicas: u32,
    /// Longest wait for the replicas to confirm a publish; past it the publish is left to the
    /// outbox relay.
    pub wait_timeout: Duration,
    /// What `rediss://` connections trust and present, when not the platform's defaults.
    pub tls: RedisTlsFiles,
}

/// PEM files for `rediss://` connections; all unset: trust the platform's root certificates
/// and present no client certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisTlsFiles {
    /// Certificate authorities trusted instead of the platform's (`SHOPNOW_REDIS_TLS_CA_FILE`).
    pub ca_file: Option<PathBuf>,
    /// A client certificate, for providers that require mutual TLS
    /// (`SHOPNOW_REDIS_TLS_CERT_FILE`), and its key (`SHOPNOW_REDIS_TLS_KEY_FILE`).
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

impl RedisTlsFiles {
    /// The certificates to hand the Redis client, read from the files; `None` when no file is
    /// set. A file that cannot be read or holds no PEM certificate is an error naming its
    /// variable, so a typo stops the start instead of failing every connection later.
    pub(super) fn load(&self) -> anyhow::Result<Option<TlsCertificates>> {
        if self.ca_file.is_none() && self.client_cert_file.is_none() {
            return Ok(None);
        }
        let read = |path: &PathBuf, variable: &str| {
            std::fs::read(path).with_context(|| format!("{variable}: reading {}", path.display()))
        };
        let root_cert = match &self.ca_file {
            None => None,
            Some(path) => {
                let pem = read(path, "SHOPNOW_REDIS_TLS_CA_FILE")?;
                anyhow::ensure!(
                    contains_pem_certificate(&pem),
                    "SHOPNOW_REDIS_TLS_CA_FILE: {} holds no PEM certificate",
                    path.display()
                );
                Some(pem)
            }
        };
        let client_tls = match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: read(cert, "SHOPNOW_REDIS_TLS_CERT_FILE")?,
                client_key: read(key, "SHOPNOW_REDIS_TLS_KEY_FILE")?,
            }),
            _ => None,
        };
        Ok(Some(TlsCertificates {
            client_tls,
            root_cert,
        }))
    }
}

fn contains_pem_certificate(pem: &[u8]) -> bool {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    pem.windows(BEGIN.len()).any(|window| window == BEGIN)
}
