//! The steps `diff` and `sync` share: read the files, read the gateway's
//! state within the select tags, build the files against it, and plan.
//!
//! Only GET requests are made here, so nothing reaches the gateway's
//! configuration when the files turn out to be invalid. The gateway's
//! state is read on other threads while the files are read (`diff`) or
//! flattened (`sync`, once it has accepted them): neither needs the other.
//! A problem is still reported in the order of the steps: unreadable files
//! first, then an unreadable state, then invalid files.
//!
//! References are resolved the way the change will leave the gateway: a
//! full sync deletes what the files leave out, so references may name only
//! entities of the files, or by id live entities outside the select tags
//! (looked up one GET each, read-only); with `--no-deletes` any live
//! entity. A reference to an entity the sync would delete is refused here,
//! before any write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use schemas::file::build::{Built, Flattened};
use schemas::file::load::SourceDoc;
use schemas::packed::{Packed, PackedConfig};
use serde_json::Value;

use crate::client::{AdminClient, ClientError, GatewayArgs};
use crate::error::CommandError;
use crate::files;
use crate::plan::{self, Plan, PlanOptions};
use crate::progress;
use crate::secrets;
use crate::state::{self, LiveEntity, LiveState};
use crate::timing;

/// Everything a diff or a sync works from.
pub struct Prepared {
    pub client: AdminClient,
    /// The live state within the select tags.
    pub live: LiveState,
    /// The files, built against the live state.
    pub built: Built,
    /// Gateway entities outside the select tags that the files refer to
    /// by id (looked up, read-only).
    pub outside: PackedConfig,
    pub plan: Plan,
    /// Build and state warnings, for the JSON report.
    pub warnings: Vec<String>,
}

/// A client for the gateway named by the flags.
pub fn connect(gateway: &GatewayArgs) -> Result<AdminClient, CommandError> {
    let timeout = Duration::from_secs(gateway.timeout.max(1));
    AdminClient::new(&gateway.addr, &gateway.headers, timeout)
        .map_err(|error| CommandError::user(error.to_string()))
}

/// Read the live state, printing its warnings to stderr.
pub fn fetch_state<T: LiveEntity>(
    client: &AdminClient,
    select_tags: &[String],
) -> Result<LiveState<T>, CommandError> {
    report_state(client, state::fetch(client, select_tags))
}

/// The live state read, its warnings printed to stderr; or why it could
/// not be read.
fn report_state<T>(
    client: &AdminClient,
    fetched: Result<LiveState<T>, state::StateError>,
) -> Result<LiveState<T>, CommandError> {
    let live = fetched.map_err(|error| unreadable(client, &error))?;
    print_warnings(&live.warnings);
    Ok(live)
}

/// Warnings about the live state, to stderr.
pub fn print_warnings(warnings: &[String]) {
    progress::suspend(|| {
        for warning in warnings {
            eprintln!("warning: {warning}");
        }
    });
}

/// The live state being read on other threads while the files are read
/// or flattened. Dropped unused (the files are unreadable, say), it stops
/// before its next page; the process does not wait for it.
struct PendingState {
    /// The select tags it asked for: when started before the files were
    /// read, those of the flags.
    select_tags: Vec<String>,
    reader: JoinHandle<Result<LiveState, state::StateError>>,
    _cancel: CancelOnDrop,
}

/// Sets its flag when dropped.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl PendingState {
    fn start(client: &AdminClient, select_tags: &[String]) -> Self {
        let cancelled = Arc::new(AtomicBool::new(false));
        let (client, tags, flag) = (client.clone(), select_tags.to_vec(), cancelled.clone());
        let reader = thread::spawn(move || state::fetch_unless(&client, &tags, &flag));
        PendingState {
            select_tags: select_tags.to_vec(),
            reader,
            _cancel: CancelOnDrop(cancelled),
        }
    }

    /// The state within `select_tags`, warnings printed: this read's when
    /// it asked for those tags, else (the files name select tags the flags
    /// did not) a new read.
    fn finish(
        self,
        client: &AdminClient,
        select_tags: &[String],
    ) -> Result<LiveState, CommandError> {
        if self.select_tags != select_tags {
            drop(self);
            return fetch_state(client, select_tags);
        }
        let fetched = match self.reader.join() {
            Ok(fetched) => fetched,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        report_state(client, fetched)
    }
}

/// The first request to the gateway failed: say what to check when the
/// gateway is not there or wants a token, then the request's own error.
fn unreadable(client: &AdminClient, error: &state::StateError) -> CommandError {
    let client_error = error.client_error();
    let lead = match client_error {
        Some(ClientError::Transport { .. }) => format!(
            "cannot reach the gateway's Admin API at {} (set with --addr or GWCTL_ADDR): ",
            client.base()
        ),
        Some(answer) if matches!(answer.status(), Some(401 | 403)) => {
            "the Admin API refused gwctl: give its token with --header 'Kong-Admin-Token: TOKEN': "
                .to_owned()
        }
        _ => String::new(),
    };
    CommandError::user(format!("{lead}{error}"))
}

/// What to do beyond reading.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrepareOptions {
    pub plan: PlanOptions,
    /// Refuse files holding `dump --sanitize` markers (sync).
    pub refuse_sanitized: bool,
    /// Record where each entity of the files came from, for the messages
    /// of applying them (sync); a diff does without.
    pub origins: bool,
    /// Show the values substituted from `DECK_*` variables as they are
    /// (`--no-mask-deck-env-vars-value`); otherwise as `[masked]`.
    pub show_env_values: bool,
}

/// Read, fetch, build and plan; see the module doc.
pub fn prepare(
    paths: &[String],
    gateway: &GatewayArgs,
    options: PrepareOptions,
) -> Result<Prepared, CommandError> {
    let client = connect(gateway);
    // A sync promises to send nothing at all for a file it refuses, so it
    // reads the gateway only once the files are read and accepted.
    let early = match &client {
        Ok(client) if !options.refuse_sanitized => {
            Some(PendingState::start(client, &gateway.select_tags))
        }
        _ => None,
    };
    progress::phase("reading the files");
    let files = files::read(paths, files::Purpose::Sync)?;
    timing::mark("read the files");
    if options.refuse_sanitized {
        refuse_sanitized(&files.docs)?;
    }
    let client = client?;
    let select_tags = select_tags(&files.docs, &gateway.select_tags);
    let pending = early.unwrap_or_else(|| PendingState::start(&client, &select_tags));
    progress::phase("flattening the files");
    let flattened = crate::allocator::returning_freed_memory(|| {
        files::flatten(
            files.docs,
            &gateway.select_tags,
            options.plan.no_deletes,
            options.origins,
        )
    });
    timing::mark("flattened the files");
    progress::phase("reading the gateway's state");
    let live = pending.finish(&client, &select_tags)?;
    timing::mark("fetched the gateway's state");
    progress::phase("looking up the entities outside the select tags");
    let outside = look_up_outside(&client, &flattened, &live.config, &select_tags)?;
    progress::phase("building the files");
    let mut built = files::build_flattened(flattened, &live.config, &outside)?;
    timing::mark("built the files");
    progress::phase("comparing with the gateway");
    plan::keep_generated_values(&mut built.config, &live.config);
    timing::mark("kept generated values");
    let mut plan = plan::plan(&built.config, &live.config, &options.plan);
    if !options.show_env_values {
        plan.mask_env_values(&files.env_values);
    }
    timing::mark("planned");
    print_warnings(&plan.warnings);
    let mut warnings = files.warnings;
    warnings.extend(live.warnings.iter().cloned());
    warnings.extend(plan.warnings.iter().cloned());
    warnings.extend(built.warnings.iter().map(ToString::to_string));
    Ok(Prepared {
        client,
        live,
        built,
        outside,
        plan,
        warnings,
    })
}

/// The gateway entities outside the select tags that the files name by
/// id (decK resolves such references among all the gateway's entities).
/// Without select tags the live state is the whole gateway: nothing to
/// look up. Each is one `GET /{collection}/{id}`; a 404 means there is
/// none, which the build then reports.
fn look_up_outside(
    client: &AdminClient,
    flattened: &Flattened,
    live: &PackedConfig,
    select_tags: &[String],
) -> Result<PackedConfig, CommandError> {
    let mut outside = PackedConfig::default();
    if select_tags.is_empty() {
        return Ok(outside);
    }
    for (kind, id) in flattened.ids_to_look_up(live) {
        let path = format!("{}/{id}", kind.admin_path());
        match client.get(&path, &[]) {
            Ok(raw) => {
                let mut ignored = Vec::new();
                let entity = state::canonical_entity(kind, raw, &mut ignored);
                outside.entities_mut(kind).push(Packed::new(&entity));
            }
            Err(error) if error.status() == Some(404) => {}
            Err(error) => {
                return Err(unreadable(
                    client,
                    &state::StateError::Request {
                        collection: kind.collection(),
                        source: error,
                    },
                ))
            }
        }
    }
    timing::mark("looked up entities outside the select tags");
    Ok(outside)
}

/// Leave `prepared` to the process's exit, which follows: freeing tens of
/// thousands of JSON values one by one takes longer than the exit does.
pub fn release(prepared: Prepared) {
    std::mem::forget(prepared);
}

/// The select tags in force: the flags, else the files' `_info.select_tags`
/// (the build reports files and flags that disagree).
pub fn select_tags(docs: &[SourceDoc], flags: &[String]) -> Vec<String> {
    if !flags.is_empty() {
        return flags.to_vec();
    }
    docs.iter()
        .find_map(|doc| doc.value.get("_info")?.get("select_tags")?.as_array())
        .map(|tags| {
            tags.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Stop when a file holds a secret masked by `dump --sanitize`: syncing it
/// would overwrite the real secrets with the markers.
pub fn refuse_sanitized(docs: &[SourceDoc]) -> Result<(), CommandError> {
    for doc in docs {
        let Some(path) = secrets::find_sanitized(&doc.value) else {
            continue;
        };
        let place = match doc.positions.lookup(&path) {
            Some(pos) => format!("{}:{}:{}", doc.origin, pos.line, pos.column),
            None => doc.origin.clone(),
        };
        let field = schemas::FieldPath(path);
        return Err(CommandError::user(format!(
            "{place}: {field}: this file was written by `gwctl dump --sanitize` and holds masked \
             secrets; syncing it would replace the real secrets with the masks. Sync an unsanitized \
             dump (`gwctl dump` without --sanitize) or put the real values back"
        )));
    }
    Ok(())
}
