//! The `gateway` binary: `gateway serve` runs the gateway, `gateway echo`
//! a small httpbin-like upstream, `gateway migrations` prepares a
//! PostgreSQL database for `serve --database`. Logs go to stderr, filtered
//! by `RUST_LOG` (default `info`); listening lines and the migrations'
//! report go to stdout.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use gateway::serve::ServeArgs;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: a proxied request allocates and
/// frees a few dozen small blocks (header maps, buffers, futures); glibc's
/// malloc and free took 10-15% of the proxy's CPU samples, mimalloc takes
/// about 7% (see bench/README.md).
///
/// `--features system-allocator` keeps glibc's malloc, for heap profilers
/// that hook it (heaptrack, valgrind's massif; see bench/README.md).
#[cfg(not(feature = "system-allocator"))]
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
    /// Prepare the PostgreSQL database of `serve --database`.
    Migrations(MigrationsArgs),
}

/// Options of `gateway migrations`.
#[derive(Debug, clap::Args)]
struct MigrationsArgs {
    #[command(subcommand)]
    command: MigrationsCommand,
    /// PostgreSQL URL (libpq style), as for `serve --database`.
    #[arg(long, global = true, env = "GATEWAY_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// Time limit of connecting, in milliseconds.
    #[arg(
        long,
        global = true,
        env = "GATEWAY_PG_TIMEOUT",
        default_value_t = 5000
    )]
    pg_timeout: u64,
}

#[derive(Debug, Subcommand)]
enum MigrationsCommand {
    /// Create the schema in an empty database.
    Bootstrap,
    /// Apply the pending migrations (nothing to do is fine).
    Up,
    /// Exit 0 when the schema is up to date; otherwise say what is pending
    /// (exit 3: needs bootstrapping, 5: pending migrations, as Kong's
    /// `migrations list`).
    Status,
    /// Drop the schema and everything in it.
    Reset {
        /// Confirm the reset.
        #[arg(long, short = 'y')]
        yes: bool,
    },
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
        Command::Migrations(args) => {
            let code = migrations(args).await.context("gateway migrations")?;
            std::process::exit(code)
        }
    }
}

/// Runs a `gateway migrations` command; returns the exit code.
async fn migrations(args: MigrationsArgs) -> anyhow::Result<i32> {
    use gateway::store::postgres::migrations::{self, Command};
    use gateway::store::postgres::DatabaseUrl;

    gateway::tls::install_crypto_provider();
    let url = args
        .database
        .context("--database (or GATEWAY_DATABASE) is required")?;
    let url = DatabaseUrl::parse(&url, std::time::Duration::from_millis(args.pg_timeout))?;
    let command = match args.command {
        MigrationsCommand::Bootstrap => Command::Bootstrap,
        MigrationsCommand::Up => Command::Up,
        MigrationsCommand::Status => Command::Status,
        MigrationsCommand::Reset { yes: false } => {
            anyhow::bail!("this drops every table of the gateway and its data; confirm with --yes")
        }
        MigrationsCommand::Reset { yes: true } => Command::Reset,
    };
    let report = migrations::run(&url, command)
        .await
        .with_context(|| format!("database {}", url.describe()))?;
    for line in report.lines {
        println!("{line}");
    }
    Ok(report.code)
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
