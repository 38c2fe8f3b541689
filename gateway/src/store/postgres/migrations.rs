//! The database schema and `gateway migrations bootstrap|up|status|reset`
//! (Kong's commands and messages).
//!
//! Migrations are numbered SQL scripts ([`MIGRATIONS`]), each run in its
//! own transaction and recorded in `gw_schema_migrations`. Every command
//! holds a session advisory lock while it works, so that nodes started
//! together serialise (the second one then finds the work done).
//! `serve` refuses a database that was never bootstrapped, or that has
//! pending migrations ([`check`]).
//!
//! Tables:
//!
//! - `gw_config_state`: one row, the configuration's `revision` (raised by
//!   one per commit, in the commit's transaction, which also orders the
//!   writers) and the `cluster_id` made at bootstrap.
//! - `gw_entities`: every entity row, `(kind, id) → row` as bytes (the
//!   canonical JSON byte for byte; `jsonb` would reorder keys).
//! - `gw_config_changes`: the change log, one entry per revision: its row
//!   changes, or `replaced` for a whole-configuration replace.
//! - `sessions`: the session plugin's `storage: kong` rows, Kong's columns
//!   (`expires` as `bigint`: Kong's `int` ends in 2038).

use tokio_postgres::Client;

use super::{connect_once, DatabaseUrl, PgError};

/// One migration: its version, name and SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "000_base_config",
        sql: "
CREATE TABLE gw_config_state (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    cluster_id uuid    NOT NULL,
    revision   bigint  NOT NULL
);
INSERT INTO gw_config_state (cluster_id, revision) VALUES (gen_random_uuid(), 0);
CREATE TABLE gw_entities (
    kind     text   NOT NULL,
    id       uuid   NOT NULL,
    row      bytea  NOT NULL,
    revision bigint NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE gw_config_changes (
    revision     bigint      PRIMARY KEY,
    node_id      uuid        NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind         text        NOT NULL CHECK (kind IN ('entities', 'replaced')),
    changes      bytea
);
",
    },
    Migration {
        version: 2,
        name: "001_sessions",
        sql: "
CREATE TABLE sessions (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id text        UNIQUE NOT NULL,
    expires    bigint      NOT NULL,
    data       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    ttl        timestamptz
);
CREATE INDEX session_sessions_expires_idx ON sessions (expires);
CREATE INDEX sessions_ttl_idx ON sessions (ttl);
",
    },
];

/// The advisory lock key of migration commands (`hashtext` of a name would
/// do too; a constant is simpler to find in `pg_locks`).
const LOCK_KEY: i64 = 0x6761_7465_7761_7901;

const META_TABLE: &str = "
CREATE TABLE IF NOT EXISTS gw_schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// Where a database's schema stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// Never bootstrapped (no migrations table).
    NeedsBootstrap,
    /// Bootstrapped; these migrations are not applied yet.
    Pending(Vec<&'static str>),
    /// Every migration is applied.
    UpToDate,
}

/// Kong's message for a database that needs bootstrapping.
pub const NEEDS_BOOTSTRAP: &str =
    "Database needs bootstrapping; run 'gateway migrations bootstrap' to start a new installation";

/// Reads the schema state.
pub async fn state(client: &Client) -> Result<SchemaState, PgError> {
    let exists = client
        .query_one(
            "SELECT to_regclass('gw_schema_migrations') IS NOT NULL",
            &[],
        )
        .await?
        .get::<_, bool>(0);
    if !exists {
        return Ok(SchemaState::NeedsBootstrap);
    }
    let applied: Vec<i32> = client
        .query("SELECT version FROM gw_schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let pending: Vec<&'static str> = MIGRATIONS
        .iter()
        .filter(|migration| !applied.contains(&migration.version))
        .map(|migration| migration.name)
        .collect();
    Ok(match pending.is_empty() {
        true => SchemaState::UpToDate,
        false => SchemaState::Pending(pending),
    })
}

/// What `serve` requires: an up-to-date schema.
pub async fn check(client: &Client) -> Result<(), PgError> {
    match state(client).await? {
        SchemaState::UpToDate => Ok(()),
        SchemaState::NeedsBootstrap => Err(PgError::NeedsBootstrap),
        SchemaState::Pending(names) => Err(PgError::PendingMigrations(names.join(", "))),
    }
}

/// `bootstrap`: creates the schema in an empty database. Returns the
/// lines to print.
pub async fn bootstrap(client: &mut Client) -> Result<Vec<String>, PgError> {
    with_lock(client, |client| {
        Box::pin(async move {
            if state(client).await? != SchemaState::NeedsBootstrap {
                return Ok(vec!["Database already bootstrapped".to_owned()]);
            }
            let mut lines = vec!["Bootstrapping database...".to_owned()];
            client.batch_execute(META_TABLE).await?;
            lines.extend(apply_pending(client).await?);
            lines.push("Database is up-to-date".to_owned());
            Ok(lines)
        })
    })
    .await
}

/// `up`: applies pending migrations (none pending is fine).
pub async fn up(client: &mut Client) -> Result<Vec<String>, PgError> {
    with_lock(client, |client| {
        Box::pin(async move {
            match state(client).await? {
                SchemaState::NeedsBootstrap => Err(PgError::NeedsBootstrap),
                SchemaState::UpToDate => Ok(vec!["Database is already up-to-date".to_owned()]),
                SchemaState::Pending(_) => {
                    let mut lines = apply_pending(client).await?;
                    lines.push("Database is up-to-date".to_owned());
                    Ok(lines)
                }
            }
        })
    })
    .await
}

/// `reset`: drops every table of the schema (and the data in them).
pub async fn reset(client: &mut Client) -> Result<Vec<String>, PgError> {
    with_lock(client, |client| {
        Box::pin(async move {
            client
                .batch_execute(
                    "DROP TABLE IF EXISTS gw_config_changes, gw_entities, gw_config_state, \
                     sessions, gw_schema_migrations",
                )
                .await?;
            Ok(vec!["Database reset".to_owned()])
        })
    })
    .await
}

/// Applies every pending migration, each in its own transaction.
async fn apply_pending(client: &mut Client) -> Result<Vec<String>, PgError> {
    let SchemaState::Pending(names) = state(client).await? else {
        return Ok(Vec::new());
    };
    let mut lines = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| names.contains(&m.name)) {
        let transaction = client.transaction().await?;
        transaction.batch_execute(migration.sql).await?;
        transaction
            .execute(
                "INSERT INTO gw_schema_migrations (version, name) VALUES ($1, $2)",
                &[&migration.version, &migration.name],
            )
            .await?;
        transaction.commit().await?;
        lines.push(format!("migrating core: {} (executed)", migration.name));
    }
    lines.push(format!("{} migration(s) processed", lines.len()));
    Ok(lines)
}

type LockedWork<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<String>, PgError>> + Send + 'a>>;

/// Runs `work` holding the migrations' advisory lock (waiting for another
/// node's run to finish first).
async fn with_lock<F>(client: &mut Client, work: F) -> Result<Vec<String>, PgError>
where
    F: for<'a> FnOnce(&'a mut Client) -> LockedWork<'a>,
{
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let outcome = work(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    let lines = outcome?;
    unlocked?;
    Ok(lines)
}

/// A `gateway migrations` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Bootstrap,
    Up,
    Status,
    Reset,
}

/// What a command printed and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub code: i32,
    pub lines: Vec<String>,
}

/// Runs `command` against the database at `url`. `status` exits 0 when up
/// to date, 3 when the database needs bootstrapping, 5 with pending
/// migrations (the codes of Kong's `migrations list`).
pub async fn run(url: &DatabaseUrl, command: Command) -> Result<Report, PgError> {
    let mut client = connect_once(url).await?;
    let lines = match command {
        Command::Bootstrap => bootstrap(&mut client).await?,
        Command::Up => up(&mut client).await?,
        Command::Reset => reset(&mut client).await?,
        Command::Status => {
            let (code, lines) = match state(&client).await? {
                SchemaState::UpToDate => (0, vec!["Database is up-to-date".to_owned()]),
                SchemaState::NeedsBootstrap => (3, vec![NEEDS_BOOTSTRAP.to_owned()]),
                SchemaState::Pending(names) => (
                    5,
                    vec![
                        format!("Database has pending migrations: {}", names.join(", ")),
                        "Run 'gateway migrations up' to proceed".to_owned(),
                    ],
                ),
            };
            return Ok(Report { code, lines });
        }
    };
    Ok(Report { code: 0, lines })
}
