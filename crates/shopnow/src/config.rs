//! Configuration, read once from the environment at start-up.
//!
//! Every variable is parsed here, so an invalid value stops the process before it binds a port,
//! with a message that names the variable. Parsing takes a lookup function instead of reading
//! `std::env` directly, which keeps it a pure function that unit tests can drive.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use crate::{
    cache::{CacheConfig, CacheStrategy, NearCacheConfig, RedisConfig, RedisTlsFiles},
    db::DatabaseConfig,
    faults::{self, WriteFaults},
    http::{AccessLog, HttpConfig},
    model::{MAX_HOLD_TTL_SECS, MAX_QUANTITY, MIN_HOLD_TTL_SECS},
    observability::LogFormat,
    rate_limit::RateLimitConfig,
};

/// Settings of one `shopnow` process.
#[derive(Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub listen: SocketAddr,
    pub cache: CacheConfig,
    /// Bearer token for admin writes; `None` makes every admin write answer 403.
    pub admin_token: Option<String>,
    pub http: HttpConfig,
    pub log_format: LogFormat,
    /// Cached products the consistency sampler checks per second; 0 turns it off.
    pub sampler_rate: u32,
    /// Faults injected into writes (`SHOPNOW_FAULTS`); none unless this build allows them.
    pub faults: WriteFaults,
    /// Writes of one product this instance lets run (or wait for its row lock) at once.
    pub max_writes_per_product: usize,
    /// Writes of one product that may wait for a turn (holding no connection); more answer
    /// 503 `busy` at once.
    pub max_queued_writes_per_product: usize,
    /// How long an Idempotency-Key is remembered; a retry after that places a new order.
    pub idempotency_key_retention: Duration,
    /// How long a hold lasts when its request names no `ttl_seconds`.
    pub hold_ttl_secs: u64,
    /// The purchase limit of a product without its own: the most units of it one hold or one
    /// order may take (`SHOPNOW_MAX_LINE_QUANTITY`).
    pub max_line_quantity: i64,
    /// The writes one client may send (`SHOPNOW_RATE_LIMIT_*`, `SHOPNOW_TRUSTED_PROXIES`).
    pub rate_limit: RateLimitConfig,
    /// Time between two sweeps of lapsed hold entries off product rows (housekeeping: a lapsed
    /// hold counts for no read already).
    pub hold_sweep_interval: Duration,
}

/// A variable that is set but cannot be used, named so the operator knows what to fix.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub reason: String,
}

/// Variables whose values may carry credentials: an error names them but never echoes them.
const SECRET_VARIABLES: [&str; 3] = ["DATABASE_URL", "REDIS_URL", "SHOPNOW_ADMIN_TOKEN"];

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if SECRET_VARIABLES.contains(&self.variable) {
            write!(
                f,
                "invalid {} (value not shown): {}",
                self.variable, self.reason
            )
        } else {
            write!(
                f,
                "invalid {}={:?}: {}",
                self.variable, self.value, self.reason
            )
        }
    }
}

impl std::error::Error for ConfigError {}

pub(crate) const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/shopnow";
pub(crate) const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub(crate) const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
pub(crate) const DEFAULT_CACHE_TTL_SECS: u64 = 3600;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, which answers a variable's value or `None` when unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &'static str| Var {
            name,
            value: lookup(name).filter(|v| !v.trim().is_empty()),
        };

        let redis_urls = var("REDIS_URL").list(DEFAULT_REDIS_URL, |url| {
            if url.starts_with("redis://") || url.starts_with("rediss://") {
                Ok(url.to_string())
            } else {
                Err("expected comma-separated redis:// URLs".to_string())
            }
        })?;
        let cluster = var("SHOPNOW_REDIS_CLUSTER").flag(false)?;
        let redis_tls = redis_tls_files(&var, &redis_urls)?;

        let database_url = var("DATABASE_URL").parse_with(DEFAULT_DATABASE_URL.into(), |url| {
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                Ok(url.to_string())
            } else {
                Err("expected a postgres:// URL".to_string())
            }
        })?;

        Ok(Self {
            database: DatabaseConfig {
                url: database_url,
                pool_size: var("SHOPNOW_DB_POOL_SIZE").at_least(2, 16)? as u32,
                acquire_timeout: var("SHOPNOW_DB_ACQUIRE_TIMEOUT_MS")
                    .positive(2_000, Duration::from_millis)?,
                lock_timeout: var("SHOPNOW_DB_LOCK_TIMEOUT_MS")
                    .positive(2_000, Duration::from_millis)?,
                statement_timeout: var("SHOPNOW_DB_STATEMENT_TIMEOUT_MS")
                    .positive(5_000, Duration::from_millis)?,
                // 0: give up at the first refusal.
                startup_timeout: var("SHOPNOW_DB_STARTUP_TIMEOUT_SECS")
                    .parse(60)
                    .map(Duration::from_secs)?,
            },
            max_writes_per_product: var("SHOPNOW_MAX_WRITES_PER_PRODUCT").at_least(1, 4)?,
            max_queued_writes_per_product: var("SHOPNOW_MAX_QUEUED_WRITES_PER_PRODUCT")
                .at_least(0, 256)?,
            idempotency_key_retention: var("SHOPNOW_IDEMPOTENCY_KEY_RETENTION_HOURS")
                .positive(24, |hours| Duration::from_secs(hours * 3600))?,
            hold_ttl_secs: var("SHOPNOW_HOLD_TTL_SECS").parse_with(600, |ttl| {
                match ttl.parse::<u64>() {
                    Ok(secs) if (MIN_HOLD_TTL_SECS..=MAX_HOLD_TTL_SECS).contains(&secs) => Ok(secs),
                    _ => Err(format!(
                        "expected seconds from {MIN_HOLD_TTL_SECS} to {MAX_HOLD_TTL_SECS}"
                    )),
                }
            })?,
            max_line_quantity: var("SHOPNOW_MAX_LINE_QUANTITY").parse_with(
                MAX_QUANTITY,
                |raw| match raw.parse::<i64>() {
                    Ok(limit) if (1..=MAX_QUANTITY).contains(&limit) => Ok(limit),
                    _ => Err(format!("expected units from 1 to {MAX_QUANTITY}")),
                },
            )?,
            rate_limit: RateLimitConfig {
                per_minute: var("SHOPNOW_RATE_LIMIT_PER_MINUTE").parse(120)?,
                burst: var("SHOPNOW_RATE_LIMIT_BURST").parse(30)?,
                trusted_proxies: var("SHOPNOW_TRUSTED_PROXIES").parse_with(Vec::new(), |raw| {
                    raw.split(',')
                        .map(str::trim)
                        .filter(|entry| !entry.is_empty())
                        .map(|entry| {
                            entry
                                .parse::<ipnet::IpNet>()
                                .or_else(|_| entry.parse::<std::net::IpAddr>().map(Into::into))
                                .map_err(|_| format!("{entry:?} is no address or CIDR range"))
                        })
                        .collect()
                })?,
            },
            hold_sweep_interval: var("SHOPNOW_HOLD_SWEEP_INTERVAL_SECS")
                .positive(10, Duration::from_secs)?,
            redis: RedisConfig {
                urls: redis_urls,
                cluster,
                timeout: var("SHOPNOW_REDIS_TIMEOUT_MS").positive(200, Duration::from_millis)?,
                replicas: var("SHOPNOW_REDIS_REPLICAS").parse(0)?,
                wait_timeout: var("SHOPNOW_REDIS_WAIT_TIMEOUT_MS")
                    .positive(50, Duration::from_millis)?,
                tls: redis_tls,
            },
            listen: var("SHOPNOW_LISTEN").parse(DEFAULT_LISTEN.parse().expect("valid default"))?,
            cache: CacheConfig {
                strategy: var("SHOPNOW_CACHE_STRATEGY").parse(CacheStrategy::Versioned)?,
                prefix: var("SHOPNOW_CACHE_PREFIX").parse_with("shopnow".into(), |p| {
                    if p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
                    {
                        Ok(p.to_string())
                    } else {
                        Err("use letters, digits and - _ . : only".to_string())
                    }
                })?,
                ttl: var("SHOPNOW_CACHE_TTL_SECS")
                    .positive(DEFAULT_CACHE_TTL_SECS, Duration::from_secs)?,
                near: near_cache(&var)?,
            },
            // Trimmed: a token read from a secret file often ends with a newline, and a token
            // with spaces around it could never be sent in a header as it is.
            admin_token: var("SHOPNOW_ADMIN_TOKEN")
                .value
                .map(|t| t.trim().to_string()),
            http: HttpConfig {
                body_limit_bytes: var("SHOPNOW_BODY_LIMIT_BYTES").parse(64 * 1024)?,
                request_timeout: var("SHOPNOW_REQUEST_TIMEOUT_MS")
                    .positive(10_000, Duration::from_millis)?,
                drain_delay: var("SHOPNOW_DRAIN_DELAY_MS").millis(0)?,
                shutdown_timeout: var("SHOPNOW_SHUTDOWN_TIMEOUT_MS").millis(20_000)?,
                max_connections: var("SHOPNOW_HTTP_MAX_CONNECTIONS").at_least(1, 512)?,
                header_read_timeout: var("SHOPNOW_HTTP_HEADER_READ_TIMEOUT_MS")
                    .positive(10_000, Duration::from_millis)?,
                idle_timeout: var("SHOPNOW_HTTP_IDLE_TIMEOUT_MS")
                    .positive(75_000, Duration::from_millis)?,
                max_header_bytes: var("SHOPNOW_HTTP_MAX_HEADER_BYTES").at_least(1024, 16 * 1024)?,
                body_read_timeout: var("SHOPNOW_HTTP_BODY_READ_TIMEOUT_MS")
                    .positive(10_000, Duration::from_millis)?,
                access_log: var("SHOPNOW_ACCESS_LOG").parse(AccessLog::Errors)?,
                slow_request: var("SHOPNOW_SLOW_REQUEST_MS")
                    .positive(1_000, Duration::from_millis)?,
            },
            sampler_rate: var("SHOPNOW_SAMPLER_RATE").parse(5)?,
            faults: var("SHOPNOW_FAULTS").parse_with(WriteFaults::default(), |spec| {
                if faults::AVAILABLE {
                    WriteFaults::parse(spec)
                } else {
                    Err(
                        "this release build has no fault injection (feature fault-injection)"
                            .into(),
                    )
                }
            })?,
            log_format: var("SHOPNOW_LOG_FORMAT").parse_with(LogFormat::Text, |v| match v {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err("expected text or json".to_string()),
            })?,
        })
    }
}

/// `SHOPNOW_NEAR_CACHE` (`on`/`off`) and its bounds.
fn near_cache(var: &impl Fn(&'static str) -> Var) -> Result<NearCacheConfig, ConfigError> {
    let default = NearCacheConfig::default();
    Ok(NearCacheConfig {
        enabled: var("SHOPNOW_NEAR_CACHE").parse_with(default.enabled, |v| match v {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => Err("expected on or off".to_string()),
        })?,
        max_entries: var("SHOPNOW_NEAR_CACHE_ENTRIES").at_least(1, default.max_entries)?,
        max_bytes: var("SHOPNOW_NEAR_CACHE_BYTES").at_least(4096, default.max_bytes)?,
        lease: var("SHOPNOW_NEAR_CACHE_LEASE_MS").parse_with(default.lease, |v| {
            match v.parse::<u64>() {
                Ok(ms) if (100..=10_000).contains(&ms) => Ok(Duration::from_millis(ms)),
                _ => Err("expected milliseconds from 100 to 10000".to_string()),
            }
        })?,
    })
}

/// The files `rediss://` connections trust and present. Only their paths are checked here (the
/// files are read when the Redis client is made, with errors that name the variable); what
/// cannot work is refused: certificates for a plain `redis://` URL, a certificate without its key.
fn redis_tls_files(
    var: &impl Fn(&'static str) -> Var,
    redis_urls: &[String],
) -> Result<RedisTlsFiles, ConfigError> {
    let path = |name| var(name).parse_with(None, |p| Ok(Some(std::path::PathBuf::from(p))));
    let files = RedisTlsFiles {
        ca_file: path("SHOPNOW_REDIS_TLS_CA_FILE")?,
        client_cert_file: path("SHOPNOW_REDIS_TLS_CERT_FILE")?,
        client_key_file: path("SHOPNOW_REDIS_TLS_KEY_FILE")?,
    };
    let refuse = |variable, reason: &str| ConfigError {
        variable,
        value: String::new(),
        reason: reason.to_string(),
    };
    match (&files.client_cert_file, &files.client_key_file) {
        (Some(_), None) => {
            return Err(refuse(
                "SHOPNOW_REDIS_TLS_KEY_FILE",
                "must be set with SHOPNOW_REDIS_TLS_CERT_FILE (the client certificate's key)",
            ))
        }
        (None, Some(_)) => {
            return Err(refuse(
                "SHOPNOW_REDIS_TLS_CERT_FILE",
                "must be set with SHOPNOW_REDIS_TLS_KEY_FILE (the key's certificate)",
            ))
        }
        _ => {}
    }
    let any_file = files.ca_file.is_some() || files.client_cert_file.is_some();
    if any_file && !redis_urls.iter().all(|url| url.starts_with("rediss://")) {
        return Err(refuse(
            "REDIS_URL",
            "SHOPNOW_REDIS_TLS_* files are set, so every node must be a rediss:// URL",
        ));
    }
    Ok(files)
}

/// One environment variable, with the parsers that turn it into a setting.
struct Var {
    name: &'static str,
    value: Option<String>,
}

impl Var {
    fn parse_with<T>(
        &self,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match &self.value {
            None => Ok(default),
            Some(raw) => parse(raw.trim()).map_err(|reason| ConfigError {
                variable: self.name,
                value: raw.clone(),
                reason,
            }),
        }
    }

    fn parse<T: FromStr>(&self, default: T) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.parse_with(default, |raw| raw.parse::<T>().map_err(|e| e.to_string()))
    }

    fn millis(&self, default_ms: u64) -> Result<Duration, ConfigError> {
        self.parse(default_ms).map(Duration::from_millis)
    }

    /// A duration of at least one `unit`.
    fn positive(&self, default: u64, unit: fn(u64) -> Duration) -> Result<Duration, ConfigError> {
        self.parse_with(unit(default), |raw| {
            match raw.parse::<u64>().map_err(|e| e.to_string())? {
                0 => Err("must be at least 1".to_string()),
                n => Ok(unit(n)),
            }
        })
    }

    /// A count of at least `min`.
    fn at_least(&self, min: usize, default: usize) -> Result<usize, ConfigError> {
        self.parse_with(default, |raw| {
            match raw.parse::<usize>().map_err(|e| e.to_string())? {
                n if n < min => Err(format!("must be at least {min}")),
                n => Ok(n),
            }
        })
    }

    fn flag(&self, default: bool) -> Result<bool, ConfigError> {
        self.parse_with(default, |raw| match raw {
            "1" | "true" | "yes" => Ok(true),
            "0" | "false" | "no" => Ok(false),
            _ => Err("expected 1 or 0".to_string()),
        })
    }

    fn list<T>(
        &self,
        default: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, ConfigError> {
        self.parse_with(vec![parse(default).expect("valid default")], |raw| {
            raw.split(',').map(|item| parse(item.trim())).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_match_the_design() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database.url, DEFAULT_DATABASE_URL);
        assert_eq!(c.redis.urls, vec![DEFAULT_REDIS_URL.to_string()]);
        assert!(!c.redis.cluster);
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.cache.strategy, CacheStrategy::Versioned);
        assert_eq!(c.cache.prefix, "shopnow");
        assert_eq!(c.cache.ttl, Duration::from_secs(DEFAULT_CACHE_TTL_SECS));
        assert_eq!(c.admin_token, None);
        assert_eq!(c.log_format, LogFormat::Text);
        assert!(!c.cache.near.enabled, "the near cache is opt-in");
    }

    #[test]
    fn an_invalid_value_names_its_variable() {
        let err = config(&[("SHOPNOW_LISTEN", "not-an-address")])
            .err()
            .unwrap();
        assert_eq!(err.variable, "SHOPNOW_LISTEN");
        assert!(err.to_string().contains("SHOPNOW_LISTEN"));

        for (name, value) in [
            ("SHOPNOW_CACHE_STRATEGY", "sometimes"),
            ("SHOPNOW_CACHE_TTL_SECS", "0"),
            ("SHOPNOW_CACHE_TTL_SECS", "-5"),
            ("SHOPNOW_REDIS_CLUSTER", "maybe"),
            ("REDIS_URL", "redis://a:1,http://b"),
            ("DATABASE_URL", "mysql://localhost/x"),
            ("SHOPNOW_CACHE_PREFIX", "has space"),
            ("SHOPNOW_LOG_FORMAT", "xml"),
            ("SHOPNOW_SAMPLER_RATE", "-1"),
            ("SHOPNOW_REDIS_TIMEOUT_MS", "0"),
            ("SHOPNOW_FAULTS", "explode=1"),
            ("SHOPNOW_ACCESS_LOG", "verbose"),
            ("SHOPNOW_HTTP_MAX_CONNECTIONS", "0"),
            ("SHOPNOW_DB_POOL_SIZE", "1"),
            ("SHOPNOW_DB_LOCK_TIMEOUT_MS", "0"),
            ("SHOPNOW_MAX_WRITES_PER_PRODUCT", "0"),
            ("SHOPNOW_MAX_LINE_QUANTITY", "0"),
            ("SHOPNOW_MAX_LINE_QUANTITY", "10001"),
            ("SHOPNOW_HTTP_MAX_HEADER_BYTES", "100"),
            ("SHOPNOW_HTTP_IDLE_TIMEOUT_MS", "0"),
            ("SHOPNOW_SLOW_REQUEST_MS", "0"),
            ("SHOPNOW_NEAR_CACHE", "1"),
            ("SHOPNOW_NEAR_CACHE_ENTRIES", "0"),
            ("SHOPNOW_NEAR_CACHE_BYTES", "100"),
            ("SHOPNOW_NEAR_CACHE_LEASE_MS", "50"),
            ("SHOPNOW_NEAR_CACHE_LEASE_MS", "60000"),
        ] {
            let err = config(&[(name, value)]).err().unwrap();
            assert_eq!(err.variable, name, "{value}");
        }
    }

    #[test]
    fn an_error_never_echoes_a_credential() {
        let err = config(&[("DATABASE_URL", "mysql://user:hunter2@db/x")])
            .err()
            .unwrap();
        assert!(err.to_string().contains("DATABASE_URL"));
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn several_redis_nodes_for_a_cluster() {
        let c = config(&[
            (
                "REDIS_URL",
                "redis://127.0.0.1:7000, redis://127.0.0.1:7001",
            ),
            ("SHOPNOW_REDIS_CLUSTER", "1"),
        ])
        .unwrap();
        assert!(c.redis.cluster);
        assert_eq!(c.redis.urls.len(), 2);
        assert_eq!(c.redis.urls[1], "redis://127.0.0.1:7001");
    }

    #[test]
    fn redis_tls_files_need_rediss_urls_and_come_in_pairs() {
        let c = config(&[
            ("REDIS_URL", "rediss://default:secret@cache.example:6380"),
            ("SHOPNOW_REDIS_TLS_CA_FILE", "/etc/ca.pem"),
            ("SHOPNOW_REDIS_TLS_CERT_FILE", "/etc/client.crt"),
            ("SHOPNOW_REDIS_TLS_KEY_FILE", "/etc/client.key"),
        ])
        .unwrap();
        assert_eq!(
            c.redis.tls.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert!(c.redis.tls.client_cert_file.is_some() && c.redis.tls.client_key_file.is_some());

        let plain = config(&[
            ("REDIS_URL", "redis://user:secret@cache.example:6379"),
            ("SHOPNOW_REDIS_TLS_CA_FILE", "/etc/ca.pem"),
        ])
        .err()
        .unwrap();
        assert_eq!(plain.variable, "REDIS_URL");
        assert!(!plain.to_string().contains("secret"), "{plain}");

        for (set, missing) in [
            ("SHOPNOW_REDIS_TLS_CERT_FILE", "SHOPNOW_REDIS_TLS_KEY_FILE"),
            ("SHOPNOW_REDIS_TLS_KEY_FILE", "SHOPNOW_REDIS_TLS_CERT_FILE"),
        ] {
            let half = config(&[("REDIS_URL", "rediss://h:6380"), (set, "/etc/x.pem")])
                .err()
                .unwrap();
            assert_eq!(half.variable, missing);
        }

        // Platform roots only: rediss:// needs no variable at all.
        let c = config(&[("REDIS_URL", "rediss://cache.example:6380")]).unwrap();
        assert_eq!(c.redis.tls, RedisTlsFiles::default());
    }

    #[test]
    fn the_admin_token_is_trimmed_as_a_secret_file_leaves_it() {
        let c = config(&[("SHOPNOW_ADMIN_TOKEN", "  0123456789abcdef\n")]).unwrap();
        assert_eq!(c.admin_token.as_deref(), Some("0123456789abcdef"));
    }

    #[test]
    fn an_empty_value_counts_as_unset() {
        let c = config(&[("SHOPNOW_ADMIN_TOKEN", ""), ("SHOPNOW_LISTEN", " ")]).unwrap();
        assert_eq!(c.admin_token, None);
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
    }
}
