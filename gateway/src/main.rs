//! The `gateway` binary: `gateway serve` runs the gateway, `gateway echo`
//! a small httpbin-like upstream. Logs go to stderr, filtered by `RUST_LOG`
//! (default `info`); listening lines go to stdout.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use gateway::serve::ServeArgs;
use tracing_subscriber::EnvFilter;

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
    Serve(ServeArgs),
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
    init_logging();
    match Cli::parse().command {
        Command::Serve(args) => gateway::serve::run(args).await.context("gateway serve"),
        Command::Echo(args) => gateway::echo::run(args.listen)
            .await
            .context("gateway echo"),
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
