//! The steps `diff` and `sync` share: read the files, read the gateway's
//! state within the select tags, build the files against it, and plan.
//!
//! Only GET requests are made here, so nothing reaches the gateway's
//! configuration when the files turn out to be invalid.

use std::time::Duration;

use schemas::file::build::Built;
use schemas::file::load::SourceDoc;
use serde_json::Value;

use crate::client::{AdminClient, ClientError};
use crate::commands::GatewayArgs;
use crate::error::CommandError;
use crate::files;
use crate::plan::{self, Plan, PlanOptions};
use crate::secrets;
use crate::state::{self, LiveState};
use crate::timing;

/// Everything a diff or a sync works from.
pub struct Prepared {
    pub client: AdminClient,
    /// The live state within the select tags.
    pub live: LiveState,
    /// The files, built against the live state.
    pub built: Built,
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
pub fn fetch_state(
    client: &AdminClient,
    select_tags: &[String],
) -> Result<LiveState, CommandError> {
    let live = state::fetch(client, select_tags).map_err(|error| unreadable(client, &error))?;
    for warning in &live.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(live)
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
    let files = files::read(paths)?;
    timing::mark("read the files");
    if options.refuse_sanitized {
        refuse_sanitized(&files.docs)?;
    }
    let client = connect(gateway)?;
    let select_tags = select_tags(&files.docs, &gateway.select_tags);
    let live = fetch_state(&client, &select_tags)?;
    timing::mark("fetched the gateway's state");
    let mut built = files::build_config(&files.docs, &live.config, &gateway.select_tags)?;
    timing::mark("built the files");
    plan::keep_generated_values(&mut built.config, &live.config);
    timing::mark("kept generated values");
    let mut plan = plan::plan(&built.config, &live.config, &options.plan);
    if !options.show_env_values {
        plan.mask_env_values(&files.env_values);
    }
    timing::mark("planned");
    let mut warnings = live.warnings.clone();
    warnings.extend(built.warnings.iter().map(ToString::to_string));
    Ok(Prepared {
        client,
        live,
        built,
        plan,
        warnings,
    })
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
