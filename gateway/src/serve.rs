//! `gateway serve`: the store, the proxy (HTTP and optional HTTPS) and the
//! Admin API in one process.
//!
//! Start-up: install the crypto provider, load the TLS certificate (if
//! any), open the store (sled in `--data-dir`, or with `--database` the
//! shared PostgreSQL, `--data-dir` then keeping only the node-local copy of
//! the configuration), compile the first snapshot from it, install the
//! commit hook that applies every Admin API write to the snapshot (see
//! [`crate::snapshot::updater`]), with PostgreSQL start following the other
//! nodes' commits, bind every listener and print one line per
//! listener (`proxy listening on http://ADDR`, `proxy listening on
//! https://ADDR`, `admin listening on http://ADDR`) on stdout.
//!
//! Before all that, the access logs open (`--proxy-access-log`,
//! `--admin-access-log`; reopened on SIGUSR1) and, with `--status-listen`,
//! the Status API binds and prints `status listening on http://ADDR`:
//! `/status/ready` answers 503 with what the start waits for until the
//! other listeners serve.
//!
//! Shutdown (SIGTERM or Ctrl-C): every listener stops accepting, in-flight
//! requests get up to the drain timeout to finish, the access logs are
//! flushed, the store is flushed and [`run`] returns `Ok(())`.

use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use schemas::file::build::{build, BuildOptions};
use schemas::file::load::load_inputs;
use schemas::file::template::ProcessEnv;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use uuid::Uuid;

use crate::admin::{self, AdminState};
use crate::observability::{AccessLog, AccessLogStats, Exposition, Format, Target};
use crate::pdk::{BackgroundTask, PluginEnv};
use crate::plugins;
use crate::proxy::upstream::PoolSettings;
use crate::proxy::{self, Proxy, ProxySettings};
use crate::snapshot::{updater, SnapshotError, SnapshotHandle};
use crate::status_api::{self, StatusState};
use crate::store::postgres::{DatabaseUrl, PgBackend, PgError, PgOptions};
use crate::store::{Store, StoreError};
use crate::tls::{self, TlsError};

/// The version the gateway reports (Kong's).
pub const VERSION: &str = "3.10.0";

/// Options of `gateway serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Directory of the gateway's database (created if missing).
    #[arg(long, env = "GATEWAY_DATA_DIR", default_value = "./gateway-data")]
    pub data_dir: PathBuf,

    /// Address of the proxy's HTTP listener; port 0 picks a free port.
    #[arg(long, env = "GATEWAY_PROXY_LISTEN", default_value = "0.0.0.0:8000")]
    pub proxy_listen: SocketAddr,

    /// Address of the proxy's HTTPS listener, opened only when --tls-cert
    /// and --tls-key are given.
    #[arg(long, env = "GATEWAY_PROXY_TLS_LISTEN", default_value = "0.0.0.0:8443")]
    pub proxy_tls_listen: SocketAddr,

    /// Address of the Admin API listener.
    #[arg(long, env = "GATEWAY_ADMIN_LISTEN", default_value = "127.0.0.1:8001")]
    pub admin_listen: SocketAddr,

    /// PEM certificate chain of the HTTPS listener (end-entity first).
    #[arg(long, env = "GATEWAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of the HTTPS listener.
    #[arg(long, env = "GATEWAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Token the Admin API requires from clients; without one the Admin API
    /// is open to whoever can reach it.
    #[arg(long, env = "GATEWAY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// URL of a browser UI (e.g. Kong Manager) allowed to drive the Admin
    /// API (Kong's `admin_gui_url`): its origin passes the Origin check and
    /// gets Kong's CORS answers. Repeat it, or separate URLs with commas.
    #[arg(long, env = "GATEWAY_ADMIN_GUI_URL", value_delimiter = ',')]
    pub admin_gui_url: Vec<String>,

    /// Size of the database's page cache, in MiB.
    #[arg(long, env = "GATEWAY_CACHE_CAPACITY_MB", default_value_t = 16)]
    pub cache_capacity_mb: u64,

    /// How long a client may take to send a request head, in seconds;
    /// slower clients are disconnected (nginx's `client_header_timeout`).
    #[arg(
        long,
        env = "GATEWAY_HEADER_READ_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub header_read_timeout: u64,

    /// How long a client may send nothing of its request body, in seconds
    /// (counted between two reads); then it gets 408 and the connection
    /// closes (nginx's `client_body_timeout`).
    #[arg(
        long,
        env = "GATEWAY_CLIENT_BODY_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub client_body_timeout: u64,

    /// How long a client may take nothing of a response, in seconds
    /// (counted between two writes); then the connection closes (nginx's
    /// `send_timeout`).
    #[arg(
        long,
        env = "GATEWAY_SEND_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub send_timeout: u64,

    /// The longest request head (request line and header fields), in bytes;
    /// longer ones get 431 (414 for a request line alone that long). At
    /// least 8192 (nginx: `large_client_header_buffers`, 4 × 8k).
    #[arg(
        long,
        env = "GATEWAY_MAX_HEADER_BYTES",
        value_name = "BYTES",
        default_value_t = 64 * 1024,
        value_parser = clap::value_parser!(u64).range(8192..=16 * 1024 * 1024)
    )]
    pub max_header_bytes: u64,

    /// How long a TLS handshake may take, in seconds (nginx's
    /// `ssl_handshake_timeout`).
    #[arg(
        long,
        env = "GATEWAY_TLS_HANDSHAKE_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub tls_handshake_timeout: u64,

    /// How long in-flight requests may run after SIGTERM, in seconds
    /// (nginx's `worker_shutdown_timeout`).
    #[arg(
        long,
        env = "GATEWAY_DRAIN_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 10
    )]
    pub drain_timeout: u64,

    /// How long an idle upstream keep-alive connection is kept, in seconds
    /// (Kong's `upstream_keepalive_idle_timeout`).
    #[arg(
        long,
        env = "GATEWAY_UPSTREAM_KEEPALIVE_IDLE_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 60
    )]
    pub upstream_keepalive_idle_timeout: u64,

    /// The most idle upstream keep-alive connections kept per upstream host
    /// and worker thread; 0 disables keep-alive (Kong's
    /// `upstream_keepalive_pool_size`).
    #[arg(
        long,
        env = "GATEWAY_UPSTREAM_KEEPALIVE_POOL_SIZE",
        value_name = "N",
        default_value_t = 1024
    )]
    pub upstream_keepalive_pool_size: usize,

    /// Proxy worker threads, each serving its share of the connections on
    /// its own single-threaded runtime (like nginx's `worker_processes`);
    /// 0 means one per core.
    #[arg(long, env = "GATEWAY_WORKERS", value_name = "N", default_value_t = 0)]
    pub workers: usize,

    /// PostgreSQL URL (libpq style, e.g.
    /// `postgres://user:password@host:5432/dbname?sslmode=verify-full`):
    /// the configuration and `storage: kong` sessions live there, shared
    /// with every node using the same database. Without it, the embedded
    /// store in --data-dir. Run `gateway migrations bootstrap` first.
    #[arg(long, env = "GATEWAY_DATABASE", hide_env_values = true)]
    pub database: Option<String>,

    /// Time limit of one PostgreSQL call, in milliseconds (Kong's
    /// `pg_timeout`).
    #[arg(
        long,
        env = "GATEWAY_PG_TIMEOUT",
        value_name = "MS",
        default_value_t = 5000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub pg_timeout: u64,

    /// PostgreSQL connections of the pool (writes, catch-ups, sessions);
    /// the change listener has one more.
    #[arg(
        long,
        env = "GATEWAY_PG_POOL_SIZE",
        value_name = "N",
        default_value_t = 8
    )]
    pub pg_pool_size: usize,

    /// Seconds between two checks of the configuration revision in
    /// PostgreSQL, which catch a missed change notification (Kong's
    /// `db_update_frequency`); changes normally arrive by notification.
    #[arg(
        long,
        env = "GATEWAY_DB_UPDATE_FREQUENCY",
        value_name = "SECONDS",
        default_value_t = 5.0
    )]
    pub db_update_frequency: f64,

    /// Address of Kong's Status API (`GET /status`, `/status/ready`,
    /// `/metrics`), for probes and scrapers; off when not given (Kong's
    /// `status_listen`). It opens first, so probes see the start.
    #[arg(long, env = "GATEWAY_STATUS_LISTEN")]
    pub status_listen: Option<SocketAddr>,

    /// Where the proxy writes one line per request in Kong's
    /// `kong_log_format`: a file (appended to, reopened on SIGUSR1),
    /// `stdout`, or `off` (Kong's `proxy_access_log`).
    #[arg(
        long,
        env = "GATEWAY_PROXY_ACCESS_LOG",
        value_name = "PATH|stdout|off",
        default_value = "off"
    )]
    pub proxy_access_log: String,

    /// Where the Admin API writes one line per request in nginx's
    /// `combined` format, as Kong's: a file, `stdout`, or `off` (Kong's
    /// `admin_access_log`).
    #[arg(
        long,
        env = "GATEWAY_ADMIN_ACCESS_LOG",
        value_name = "PATH|stdout|off",
        default_value = "off"
    )]
    pub admin_access_log: String,

    /// Declarative configuration files (decK format, docs blocks or
    /// Markdown, as `gwctl validate` reads them) loaded at start, replacing
    /// the stored configuration atomically. An invalid file stops the start
    /// and leaves the store untouched.
    #[arg(long = "config", value_name = "FILE", num_args = 1..)]
    pub config: Vec<PathBuf>,
}

/// Why `gateway serve` could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The store could not be opened or flushed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// PostgreSQL could not be used (bad URL, schema not bootstrapped,
    /// unreachable without a local copy).
    #[error("database: {0}")]
    Database(#[from] PgError),
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The stored configuration could not be compiled.
    #[error("the stored configuration cannot be served: {0}")]
    Snapshot(#[from] SnapshotError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The listening lines could not be written.
    #[error("cannot write to stdout: {0}")]
    Stdout(#[source] io::Error),
    /// A signal handler could not be installed.
    #[error("cannot install the SIGTERM handler: {0}")]
    Signal(#[source] io::Error),
    /// An access log could not be opened.
    #[error("cannot open the access log {target}: {source}")]
    AccessLog {
        /// The `--*-access-log` value.
        target: String,
        #[source]
        source: io::Error,
    },
    /// The `--config` files could not be read or are invalid; one line per
    /// problem, as `gwctl validate` prints them.
    #[error("{0}")]
    AdminGuiUrl(String),
    #[error("the --config files are invalid:\n{}", .0.join("\n"))]
    ConfigFiles(Vec<String>),
}

/// Runs the gateway until SIGTERM or Ctrl-C.
pub async fn run(args: ServeArgs) -> Result<(), ServeError> {
    tls::install_crypto_provider();
    let tls_acceptor = tls_acceptor(&args)?;
    let node_id = Uuid::new_v4();
    let logs = AccessLogs::open(&args)?;
    let exposition = Arc::new(Exposition {
        node_id,
        version: VERSION,
        stats: Arc::default(),
        kong: Arc::default(),
        access_logs: logs.stats(),
    });
    let stop = StopSignal::new();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(until(stop.wait(), logs.reopen_on_sigusr1()?));
    let status = start_status_api(&args, &exposition, &stop, &mut tasks).await?;
    let store = open_store(&args, node_id).await?;
    if !args.config.is_empty() {
        status.waiting_for("loading the --config files");
        load_config_files(&store, &args.config)?;
    }
    status.waiting_for("compiling the configuration");
    let env = plugin_env(&store, node_id, &exposition);
    let snapshots = Arc::new(SnapshotHandle::new(updater::compile_stored(&store, &env)?));
    let background = plugins::background_tasks(&env);
    updater::keep_updated(&store, &snapshots, env);
    store.follow();

    let proxy_listener = bind(args.proxy_listen).await?;
    let tls_listener = match &tls_acceptor {
        Some(_) => Some(bind(args.proxy_tls_listen).await?),
        None => None,
    };
    let admin_listener = bind(args.admin_listen).await?;
    // Ready before the listening lines: whoever waits for them (a
    // supervisor, the tests) may probe /status/ready at once, and the bound
    // listeners already queue connections for the tasks spawned below.
    status.loaded(&store);
    announce(&proxy_listener, tls_listener.as_ref(), &admin_listener)?;

    let terminated = termination_signal()?;
    let mut proxy =
        Proxy::new(snapshots, proxy_settings(&args)).with_stats(Arc::clone(&exposition.stats));
    if let Some(log) = &logs.proxy {
        proxy = proxy.with_access_log(Arc::clone(log));
    }
    let proxy = Arc::new(proxy);
    tasks.spawn(proxy::serve(
        proxy_listener,
        None,
        Arc::clone(&proxy),
        stop.wait(),
    ));
    if let (Some(listener), Some(acceptor)) = (tls_listener, tls_acceptor) {
        tasks.spawn(proxy::serve(
            listener,
            Some(acceptor),
            Arc::clone(&proxy),
            stop.wait(),
        ));
    }
    let gui_origins = admin::gui_origins(&args.admin_gui_url).map_err(ServeError::AdminGuiUrl)?;
    let admin_state = Arc::new(AdminState {
        store: Arc::clone(&store),
        admin_token: args.admin_token.clone(),
        gui_origins,
        node_id,
        version: VERSION,
        listen_addr: admin_listener
            .local_addr()
            .map_err(|source| ServeError::Bind {
                addr: args.admin_listen,
                source,
            })?,
        exposition: Arc::clone(&exposition),
        access_log: logs.admin.clone(),
    });
    tasks.spawn(admin::serve(admin_listener, admin_state, stop.wait()));
    for task in background {
        tasks.spawn(until(stop.wait(), task));
    }

    terminated.await;
    tracing::info!("shutting down: draining in-flight requests");
    stop.trigger();
    while tasks.join_next().await.is_some() {}
    logs.close();
    store.flush()?;
    tracing::info!("stopped");
    Ok(())
}

/// The Status API, when `--status-listen` is given: bound and announced
/// (`status listening on http://ADDR`) before anything else starts, so
/// that probes see the start; its state says what the start waits for.
async fn start_status_api(
    args: &ServeArgs,
    exposition: &Arc<Exposition>,
    stop: &StopSignal,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Result<Arc<StatusState>, ServeError> {
    let state = Arc::new(StatusState::new(
        Arc::clone(exposition),
        VERSION,
        "opening the store",
    ));
    let Some(addr) = args.status_listen else {
        return Ok(state);
    };
    let listener = bind(addr).await?;
    let line = format!("status listening on http://{}", local_addr(&listener)?);
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(ServeError::Stdout)?;
    tasks.spawn(status_api::serve(listener, Arc::clone(&state), stop.wait()));
    Ok(state)
}

/// The access logs of `--proxy-access-log` and `--admin-access-log`.
struct AccessLogs {
    proxy: Option<Arc<AccessLog>>,
    admin: Option<Arc<AccessLog>>,
}

impl AccessLogs {
    fn open(args: &ServeArgs) -> Result<Self, ServeError> {
        let open =
            |value: &str, name: &str, format| -> Result<Option<Arc<AccessLog>>, ServeError> {
                let Some(target) = Target::parse(value) else {
                    return Ok(None);
                };
                let log = AccessLog::open(name, target, format).map_err(|source| {
                    ServeError::AccessLog {
                        target: value.to_owned(),
                        source,
                    }
                })?;
                Ok(Some(Arc::new(log)))
            };
        Ok(AccessLogs {
            proxy: open(&args.proxy_access_log, "proxy-access-log", Format::Kong)?,
            admin: open(&args.admin_access_log, "admin-access-log", Format::Combined)?,
        })
    }

    fn all(&self) -> impl Iterator<Item = (&'static str, &Arc<AccessLog>)> {
        let proxy = self.proxy.iter().map(|log| ("proxy", log));
        proxy.chain(self.admin.iter().map(|log| ("admin", log)))
    }

    /// Their counters, by name, for `/metrics`.
    fn stats(&self) -> Vec<(&'static str, Arc<AccessLogStats>)> {
        self.all()
            .map(|(name, log)| (name, Arc::clone(log.stats())))
            .collect()
    }

    /// A task reopening their files on each SIGUSR1, as nginx does for
    /// logrotate. The handler is installed even without logs, so that a
    /// SIGUSR1 never ends the process.
    fn reopen_on_sigusr1(&self) -> Result<BackgroundTask, ServeError> {
        let logs: Vec<Arc<AccessLog>> = self.all().map(|(_, log)| Arc::clone(log)).collect();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut usr1 = signal(SignalKind::user_defined1()).map_err(ServeError::Signal)?;
            Ok(Box::pin(async move {
                while usr1.recv().await.is_some() {
                    tracing::info!("SIGUSR1: reopening the access logs");
                    for log in &logs {
                        log.reopen();
                    }
                }
            }))
        }
        #[cfg(not(unix))]
        {
            drop(logs);
            Ok(Box::pin(std::future::pending()))
        }
    }

    /// Writes what they hold and stops their writers.
    fn close(&self) {
        for (_, log) in self.all() {
            log.close();
        }
    }
}

/// The store: sled in `--data-dir`, or the `--database` PostgreSQL (with
/// the node-local copy kept in `--data-dir`).
async fn open_store(args: &ServeArgs, node_id: Uuid) -> Result<Arc<Store>, ServeError> {
    let Some(url) = &args.database else {
        let cache = args.cache_capacity_mb.saturating_mul(1 << 20);
        return Ok(Arc::new(Store::open(&args.data_dir, cache)?));
    };
    std::fs::create_dir_all(&args.data_dir).map_err(|source| ServeError::DataDir {
        path: args.data_dir.clone(),
        source,
    })?;
    let timeout = std::time::Duration::from_millis(args.pg_timeout);
    let options = PgOptions {
        url: DatabaseUrl::parse(url, timeout)?,
        node_id,
        timeout,
        poll_interval: std::time::Duration::from_secs_f64(
            args.db_update_frequency.clamp(0.05, 3600.0),
        ),
        pool_size: args.pg_pool_size,
        data_dir: args.data_dir.clone(),
    };
    tracing::info!(database = %options.url.describe(), "using PostgreSQL");
    // Opening waits for the database: off the async workers.
    let opened = tokio::task::spawn_blocking(move || -> Result<Store, ServeError> {
        Ok(Store::new(Box::new(PgBackend::open(options)?))?)
    })
    .await
    .map_err(|error| ServeError::Database(PgError::Runtime(error.to_string())))??;
    let store = Arc::new(opened);
    store.keep_local_copy(&args.data_dir);
    Ok(store)
}

/// The proxy's settings: the defaults with the flags' values.
fn proxy_settings(args: &ServeArgs) -> ProxySettings {
    let seconds = std::time::Duration::from_secs;
    let defaults = ProxySettings::default();
    ProxySettings {
        header_read_timeout: seconds(args.header_read_timeout),
        client_body_timeout: seconds(args.client_body_timeout),
        send_timeout: seconds(args.send_timeout),
        max_header_bytes: usize::try_from(args.max_header_bytes).unwrap_or(usize::MAX),
        tls_handshake_timeout: seconds(args.tls_handshake_timeout),
        drain_timeout: seconds(args.drain_timeout),
        pool: PoolSettings {
            idle_timeout: seconds(args.upstream_keepalive_idle_timeout),
            max_idle_per_host: args.upstream_keepalive_pool_size,
        },
        workers: match args.workers {
            0 => defaults.workers,
            workers => workers,
        },
        ..defaults
    }
}

/// The TLS acceptor when a certificate and key are configured.
fn tls_acceptor(args: &ServeArgs) -> Result<Option<TlsAcceptor>, ServeError> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(TlsAcceptor::from(tls::server_config(cert, key)?))),
        _ => Ok(None),
    }
}

/// Replace the stored configuration with the `--config` files, built
/// against the stored one so ids (and sessions bound to consumer ids) stay.
fn load_config_files(store: &Store, files: &[PathBuf]) -> Result<(), ServeError> {
    let paths: Vec<String> = files
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    let loaded = load_inputs(&paths, &mut io::empty(), &ProcessEnv).map_err(|error| {
        ServeError::ConfigFiles(error.to_string().lines().map(str::to_owned).collect())
    })?;
    let built =
        build(&loaded.docs, &store.export()?, &BuildOptions::default()).map_err(|diagnostics| {
            ServeError::ConfigFiles(diagnostics.iter().map(ToString::to_string).collect())
        })?;
    for warning in &built.warnings {
        tracing::warn!("{warning}");
    }
    store.replace_all(built.config.unpack())?;
    tracing::info!(entities = built.config.len(), "loaded the --config files");
    Ok(())
}

/// The plugins' environment: node id, host name, the database's session
/// rows (for the session plugin's `storage: kong`) and the prometheus
/// plugin's metric families.
fn plugin_env(store: &Store, node_id: Uuid, exposition: &Exposition) -> PluginEnv {
    PluginEnv {
        node_id,
        hostname: hostname(),
        sessions: Some(store.sessions()),
        metrics: Arc::clone(&exposition.kong),
    }
}

/// Runs `task` until `stop` completes.
async fn until(stop: impl Future<Output = ()>, task: BackgroundTask) {
    tokio::select! {
        _ = stop => {}
        _ = task => {}
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Prints one line per listener with its bound address, and flushes.
fn announce(
    proxy: &TcpListener,
    proxy_tls: Option<&TcpListener>,
    admin: &TcpListener,
) -> Result<(), ServeError> {
    let mut lines = vec![format!("proxy listening on http://{}", local_addr(proxy)?)];
    if let Some(listener) = proxy_tls {
        lines.push(format!(
            "proxy listening on https://{}",
            local_addr(listener)?
        ));
    }
    lines.push(format!("admin listening on http://{}", local_addr(admin)?));
    let mut out = io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}").map_err(ServeError::Stdout)?;
    }
    out.flush().map_err(ServeError::Stdout)
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, ServeError> {
    listener.local_addr().map_err(ServeError::Stdout)
}

/// Tells every server to stop accepting.
struct StopSignal {
    sender: watch::Sender<bool>,
}

impl StopSignal {
    fn new() -> Self {
        StopSignal {
            sender: watch::channel(false).0,
        }
    }

    /// A future completing once [`StopSignal::trigger`] was called.
    fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.sender.subscribe();
        async move {
            let _ = receiver.wait_for(|stopped| *stopped).await;
        }
    }

    fn trigger(&self) {
        self.sender.send_replace(true);
    }
}

/// A future completing on Ctrl-C or (on Unix) SIGTERM.
fn termination_signal() -> Result<impl Future<Output = ()>, ServeError> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServeError::Signal)?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// This machine's host name, or `localhost`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
