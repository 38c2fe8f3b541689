//! The `gateway` binary: `gateway serve` runs the gateway, `gateway echo`
//! a small httpbin-like upstream. Logs go to stderr, filtered by `RUST_LOG`
//! (default `info`); listening lines go to stdout.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use gateway::serve::ServeArgs;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: a proxied request allocates and
/// frees a few dozen small blocks (header maps, buffers, futures); glibc's
/// malloc and free took 10-15% of the proxy's CPU samples, mimalloc takes
/// about 7% (see bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Kong-compatible API gateway.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy and the Admin API until SIGTERM or Ctrl-C.
    Serve(Box<ServeArgs>),
    /// Run the echo upstream (httpbin-like) until SIGTERM or Ctrl-C.
    Echo(EchoArgs),
}

/// Options of `gateway echo`.
#[derive(Debug, clap::Args)]
struct EchoArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "GATEWAY_ECHO_LISTEN", default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    keep_small_pages();
    init_logging();
    match Cli::parse().command {
        Command::Serve(args) => gateway::serve::run(*args).await.context("gateway serve"),
        Command::Echo(args) => gateway::echo::run(args.listen)
            .await
            .context("gateway echo"),
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`); colours only
/// on a terminal, so that a log file holds plain text.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// No transparent huge pages for this process: mimalloc asks for them, and
/// they added about 40 MB of resident memory (half-used 2 MiB pages) to a
/// gateway that needs 20 MB, for no clear speed-up in bench/proxy.sh.
#[cfg(target_os = "linux")]
fn keep_small_pages() {
    // Only an economy: if the kernel refuses, the pages stay as they were.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

#[cfg(not(target_os = "linux"))]
fn keep_small_pages() {}
