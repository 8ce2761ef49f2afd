//! The `shopnow` command line: `serve` (default), `migrate`, `seed`, `healthcheck`. The
//! stale-read checker is a binary of its own (`crates/stalecheck`).

use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{app::Application, config::Config, db, hooks::Hooks, observability};

#[derive(Debug, Parser)]
#[command(
    name = "shopnow",
    version,
    about = "Catalog, inventory and orders API with a product cache that is never stale",
    after_help = "Configuration comes from the environment: DATABASE_URL, REDIS_URL, SHOPNOW_LISTEN, \
                  SHOPNOW_CACHE_STRATEGY, SHOPNOW_CACHE_PREFIX, SHOPNOW_CACHE_TTL_SECS, \
                  SHOPNOW_ADMIN_TOKEN and more; see README.md."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve {
        /// Before serving, make sure this many demo products exist (like `seed`).
        #[arg(long, value_name = "N", default_value_t = 0)]
        seed_products: i64,
        /// Delay between a cache miss's Postgres read and its fill. Only `stalecheck --spawn`
        /// passes it, to show the `delete` strategy's race; never use it in production.
        #[arg(long, value_name = "MS", hide = true)]
        fill_delay_ms: Option<u64>,
        /// Serve reads with the article's design (version from Postgres on every read, payload
        /// from Redis), whatever SHOPNOW_CACHE_STRATEGY says. For the benchmark's comparison;
        /// built only with the `article-design` feature.
        #[cfg(feature = "article-design")]
        #[arg(long, hide = true)]
        article_design: bool,
    },
    /// Create the database if missing and apply migrations, then exit.
    Migrate,
    /// Fill a demo catalog; running it again adds nothing.
    Seed {
        #[arg(long, value_name = "N", default_value_t = 100)]
        products: i64,
    },
    /// Exit 0 when this machine's instance answers /livez (for a container HEALTHCHECK).
    Healthcheck {
        /// Address to check; defaults to the port of SHOPNOW_LISTEN on 127.0.0.1.
        #[arg(long)]
        addr: Option<SocketAddr>,
    },
}

/// Runs the parsed command line; the binary's `main` is a call to this.
pub async fn run(cli: Cli) -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("shopnow: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    observability::init_logging(config.log_format);
    let command = cli.command.unwrap_or(Command::Serve {
        seed_products: 0,
        fill_delay_ms: None,
        #[cfg(feature = "article-design")]
        article_design: false,
    });
    let result = match command {
        Command::Serve {
            seed_products,
            fill_delay_ms,
            #[cfg(feature = "article-design")]
            article_design,
        } => {
            #[cfg(feature = "article-design")]
            let config = {
                let mut config = config;
                if article_design {
                    config.cache.strategy = crate::cache::CacheStrategy::Article;
                }
                config
            };
            serve(config, seed_products, fill_delay_ms).await
        }
        Command::Migrate => migrate(&config).await,
        Command::Seed { products } => seed(&config, products).await,
        Command::Healthcheck { addr } => {
            let addr = addr.unwrap_or_else(|| loopback(config.listen));
            return match healthcheck(addr).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("shopnow healthcheck: {addr}: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "shopnow failed");
            eprintln!("shopnow: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    config: Config,
    seed_products: i64,
    fill_delay_ms: Option<u64>,
) -> anyhow::Result<()> {
    if seed_products > 0 {
        seed(&config, seed_products).await?;
    }
    let mut hooks = Hooks::default();
    if let Some(delay) = fill_delay_ms.filter(|ms| *ms > 0) {
        tracing::warn!(
            delay_ms = delay,
            "fill delay on: this instance widens the cache fill race"
        );
        let delay = Duration::from_millis(delay);
        hooks.before_fill = Some(Arc::new(move |_| Box::pin(tokio::time::sleep(delay))));
    }
    Application::build(config, hooks)
        .await?
        .run_until_stopped()
        .await
}

/// Like `serve`, the one-shot commands wait for a Postgres that is not up yet (containers start
/// in any order), up to `SHOPNOW_DB_STARTUP_TIMEOUT_SECS`.
async fn migrate(config: &Config) -> anyhow::Result<()> {
    db::Database::connect_and_migrate_patiently(&config.database).await?;
    tracing::info!("migrations applied");
    Ok(())
}

async fn seed(config: &Config, products: i64) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=10_000_000).contains(&products),
        "--products must be between 1 and 10000000"
    );
    let database = db::Database::connect_and_migrate_patiently(&config.database).await?;
    let mut conn = database.pool.acquire().await?;
    let inserted = db::products::seed_demo(&mut conn, products)
        .await
        .context("seeding")?;
    tracing::info!(inserted, requested = products, "demo catalog seeded");
    Ok(())
}

/// The address a local probe uses for a listen address: a wildcard becomes loopback.
fn loopback(listen: SocketAddr) -> SocketAddr {
    let ip = if listen.ip().is_unspecified() {
        match listen {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        }
    } else {
        listen.ip()
    };
    SocketAddr::new(ip, listen.port())
}

/// One `GET /livez` over plain HTTP/1.1 to `addr`: what `shopnow healthcheck` runs (the
/// runtime image has no curl).
pub async fn healthcheck(addr: SocketAddr) -> anyhow::Result<()> {
    let check = async {
        let mut stream = TcpStream::connect(addr).await.context("connecting")?;
        stream
            .write_all(b"GET /livez HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        stream
            .read_exact(&mut head)
            .await
            .context("reading the answer")?;
        anyhow::ensure!(
            head.starts_with(b"HTTP/1.1 200"),
            "answered {:?}",
            String::from_utf8_lossy(&head)
        );
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(3), check)
        .await
        .context("no answer within 3 s")?
}
