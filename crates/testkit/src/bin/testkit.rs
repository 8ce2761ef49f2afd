//! `testkit`: the test infrastructure for scripts (bench/run, the rolling-update rehearsal),
//! so that they start Redis, make databases and wait for instances the way the tests do.

use std::{process::ExitCode, sync::Arc, time::Duration};

use clap::{Parser, Subcommand};
use testkit::{free_port, RedisServer, TestCertificates, TestDatabase};

#[derive(Parser)]
#[command(name = "testkit", about = "shopnow's test infrastructure, for scripts")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a free loopback port.
    FreePort,
    /// Start a redis-server of its own on a free port, print its URL once it accepts
    /// connections, and stop it when standard input closes.
    RedisServer {
        /// Speak TLS only, with certificates made for it: prints the `rediss://` URL, then on a
        /// second line the CA file that signed the server's certificate.
        #[arg(long)]
        tls: bool,
        /// Extra redis-server arguments, after `--`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Create a database with a fresh name and print its URL.
    CreateDatabase {
        #[arg(long, default_value = "shopnow_script")]
        prefix: String,
    },
    /// Drop a database made by create-database.
    DropDatabase { url: String },
    /// Wait until GET <URL> answers 200, at most --timeout seconds.
    WaitReady {
        url: String,
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("testkit: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::FreePort => println!("{}", free_port()),
        Command::RedisServer { tls, args } => {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let redis = if tls {
                let certificates = Arc::new(TestCertificates::try_generate()?);
                RedisServer::start_tls(&certificates, &args)
            } else {
                RedisServer::try_start_with(&args)?
            };
            println!("{}", redis.url());
            if let Some(certificates) = redis.certificates() {
                println!("{}", certificates.ca_file().display());
            }
            // Until the caller closes our standard input (or dies, which closes it).
            tokio::task::spawn_blocking(|| {
                std::io::copy(&mut std::io::stdin(), &mut std::io::sink())
            })
            .await??;
            drop(redis);
        }
        Command::CreateDatabase { prefix } => {
            println!("{}", TestDatabase::create(&prefix).await?.keep());
        }
        Command::DropDatabase { url } => TestDatabase::drop_by_url(&url).await?,
        Command::WaitReady { url, timeout } => {
            wait_ready(&url, Duration::from_secs(timeout)).await?
        }
    }
    Ok(())
}

/// Polls `url` every 100 ms with a bare HTTP/1.1 GET until it answers 200.
async fn wait_ready(url: &str, timeout: Duration) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("{url}: only http:// URLs"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(authority).await {
            let mut head = [0u8; 12];
            if stream.write_all(request.as_bytes()).await.is_ok()
                && stream.read_exact(&mut head).await.is_ok()
                && head.starts_with(b"HTTP/1.1 200")
            {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{url} did not answer 200 within {timeout:?}")
}
