//! A throwaway PostgreSQL cluster for the end-to-end tests of
//! `gateway serve --database`.
//!
//! [`Postgres::start`] runs Debian's server binaries (`initdb`, `pg_ctl`
//! from `/usr/lib/postgresql/<version>/bin`, the newest found, or from
//! `PATH`) on a temporary directory, as the `postgres` user when the tests
//! run as root (`initdb` refuses root), with trust authentication for the
//! superuser `gw`, listening on a free loopback port and a unix socket in
//! the same directory. Dropping it stops the server (`-m immediate`) and
//! removes the directory.
//!
//! Missing binaries fail the test with what to install: these tests never
//! skip.
//!
//! [`Postgres::start_tls`] also serves TLS, with a certificate for
//! `localhost` and `127.0.0.1` issued by a CA made for the test.
//!
//! Faults: [`Postgres::stop_immediate`] (a crash-like stop, as `pg_ctl stop
//! -m immediate`), [`Postgres::restart`], [`Postgres::freeze`] /
//! [`Postgres::thaw`] (SIGSTOP / SIGCONT of the postmaster and its
//! children: a silent partition, no RST).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::Output;

/// The superuser the clusters are made with.
pub const SUPERUSER: &str = "gw";

/// A running throwaway cluster.
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
    /// More server options (`-c ssl=on ...`).
    options: String,
    tls: Option<crate::TlsFiles>,
}

impl Postgres {
    /// `initdb` and start a cluster; panics (failing the test) when the
    /// server binaries are missing or it does not start.
    pub fn start() -> Postgres {
        Postgres::start_with(false)
    }

    /// Like [`Postgres::start`], serving TLS too (see
    /// [`Postgres::tls_files`] for the CA to trust).
    pub fn start_tls() -> Postgres {
        Postgres::start_with(true)
    }

    /// The CA and certificate of a [`Postgres::start_tls`] server.
    pub fn tls_files(&self) -> Option<&crate::TlsFiles> {
        self.tls.as_ref()
    }

    fn start_with(tls: bool) -> Postgres {
        let bin = server_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("e2e-postgres-")
            .tempdir()
            .expect("a temporary directory for PostgreSQL");
        let as_postgres = running_as_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(
                status.success(),
                "cannot chown the cluster directory to postgres"
            );
        }
        let mut cluster = Postgres {
            bin,
            dir,
            port: crate::closed_port(),
            as_postgres,
            options: String::new(),
            tls: None,
        };
        cluster
            .server_tool("initdb")
            .arg("-D")
            .arg(cluster.data_dir())
            .args(&["-A", "trust", "-U", SUPERUSER, "--no-sync", "-E", "UTF8"])
            .run()
            .assert_status(0);
        if tls {
            cluster.add_tls();
        }
        cluster.start_server();
        cluster
    }

    /// Certificate files the server can read (its key private to it).
    fn add_tls(&mut self) {
        let tls_dir = self.dir.path().join("tls");
        std::fs::create_dir_all(&tls_dir).expect("a TLS directory");
        let files = crate::write_tls_files(&tls_dir);
        let mut chmod = Command::new("chmod");
        chmod.arg("600").arg(&files.key);
        assert!(chmod.status().expect("chmod runs").success());
        if self.as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&tls_dir)
                .status()
                .expect("chown runs");
            assert!(status.success(), "cannot chown the TLS files to postgres");
        }
        self.options = format!(
            " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            files.cert.display(),
            files.key.display()
        );
        self.tls = Some(files);
    }

    /// The port it listens on (loopback).
    pub fn port(&self) -> u16 {
        self.port
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `postgres://gw@127.0.0.1:PORT/DB`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// A new empty database (`t1`, `t2`, ...); its URL.
    pub fn create_database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs `sql` with psql in `database` and returns what it printed
    /// (unaligned, tuples only); panics unless it succeeds.
    #[track_caller]
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = self.try_psql(database, sql);
        output.assert_status(0);
        output.stdout.trim().to_owned()
    }

    /// Runs `sql` with psql in `database`, whatever it answers.
    pub fn try_psql(&self, database: &str, sql: &str) -> Output {
        crate::Run::new(self.bin.join("psql"))
            .args(&["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(&[
                "-h",
                "127.0.0.1",
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-c",
                sql,
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .timeout(Duration::from_secs(30))
            .run()
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m
    /// immediate`): open connections are cut.
    pub fn stop_immediate(&self) {
        self.pg_ctl(&["stop", "-m", "immediate", "-w"])
            .run()
            .assert_status(0);
    }

    /// Starts the server again (after [`Postgres::stop_immediate`]).
    pub fn restart(&self) {
        self.start_server();
    }

    /// SIGSTOP to the postmaster and every backend: connections stay open
    /// and nothing answers.
    pub fn freeze(&self) {
        self.signal_all("STOP");
    }

    /// SIGCONT: everything answers again.
    pub fn thaw(&self) {
        self.signal_all("CONT");
    }

    fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=100{}",
            self.port,
            self.dir.path().display(),
            self.options
        );
        let log = self.dir.path().join("server.log");
        self.pg_ctl(&["start", "-w", "-t", "30", "-o", &options, "-l"])
            .arg(&log)
            .timeout(Duration::from_secs(40))
            .run()
            .assert_status(0);
        self.wait_until_ready();
    }

    /// Until psql gets in (the server may still recover after a crash).
    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let output = self.try_psql("postgres", "SELECT 1");
            if output.status == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL does not accept connections\n{output}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal_all(&self, signal: &str) {
        let pid = self.postmaster_pid();
        let script = format!("kill -{signal} {pid}; pkill -{signal} -P {pid}; true");
        let status = Command::new("sh")
            .args(["-c", &script])
            .status()
            .expect("sh runs");
        assert!(status.success(), "cannot send SIG{signal} to PostgreSQL");
    }

    /// The postmaster's pid (first line of `postmaster.pid`).
    pub fn postmaster_pid(&self) -> u32 {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .expect("postmaster.pid of a running server");
        text.lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .expect("a pid in postmaster.pid")
    }

    fn pg_ctl(&self, args: &[&str]) -> crate::Run {
        self.server_tool("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(args)
    }

    /// A server binary, run as `postgres` when we are root.
    fn server_tool(&self, name: &str) -> crate::Run {
        let tool = self.bin.join(name);
        let run = match self.as_postgres {
            true => crate::Run::new("runuser")
                .args(&["-u", "postgres", "--"])
                .arg(tool),
            false => crate::Run::new(tool),
        };
        run.current_dir(self.dir.path())
            .timeout(Duration::from_secs(60))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A frozen server does not stop; wake it first.
        if self.data_dir().join("postmaster.pid").exists() {
            self.thaw();
            let _ = self
                .pg_ctl(&["stop", "-m", "immediate", "-w"])
                .timeout(Duration::from_secs(30))
                .try_run();
        }
    }
}

/// The directory of `initdb` and `pg_ctl`: the newest
/// `/usr/lib/postgresql/<version>/bin`, else the directory of `pg_ctl` on
/// `PATH`. Panics with what to install when there is none.
pub fn server_bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("pg_ctl").is_file() && dir.join("initdb").is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "PostgreSQL's server binaries (initdb, pg_ctl) are missing: these tests need them \
             and never skip. Install Debian's `postgresql` package (`apt-get install postgresql`; \
             .ci/run does)."
        )
    })
}

fn running_as_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("id runs");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}
