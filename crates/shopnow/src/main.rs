use std::process::ExitCode;

use clap::Parser;

/// glibc's allocator dominated the profile of a cached product read (BENCHMARKS.md); mimalloc
/// serves the many small, short-lived allocations of a request much faster.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    shopnow::run(shopnow::Cli::parse()).await
}
