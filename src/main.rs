use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    shopnow::cli::run(shopnow::cli::Cli::parse()).await
}
