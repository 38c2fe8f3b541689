//! `gwctl sync`: make the gateway's configuration equal to the files.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Args;
use schemas::packed::PackedConfig;

use super::{ChangeDisplayArgs, GatewayArgs};
use crate::apply::{Applier, ApplyError, AtomicOutcome, Progress, RunReport};
use crate::error::CommandError;
use crate::output::{self, Style};
use crate::plan::Counts;
use crate::progress;
use crate::reconcile::{self, Prepared};
use crate::state;

/// Make the gateway's configuration equal to decK files: create and update
/// what the files hold and delete what they do not (within the select
/// tags), printing each change and decK's summary.
///
/// Against this project's gateway the whole change is applied in one
/// transaction (`POST /config`): if any entity is rejected, nothing
/// changes, and the error names the entity and its place in the files.
/// Against a gateway without that endpoint (Kong with a database) the
/// changes are made one Admin API call at a time, parents first, deletes
/// last. Files are checked first; a sync of unchanged files sends no
/// write. Files written by `gwctl dump --sanitize` are refused.
///
/// Since a sync deletes what the files leave out, references may name only
/// entities of the files or, by id, gateway entities outside the select
/// tags; with --no-deletes, any entity on the gateway.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Files or directories to apply; `-` (or nothing) reads stdin.
    /// Markdown files contribute their `{% entity_examples %}` blocks,
    /// applied one after the other as the docs apply them.
    pub files: Vec<String>,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Only create and update; delete nothing the files leave out (decK's
    /// `apply`, for partial files such as the docs' example blocks).
    #[arg(long)]
    pub no_deletes: bool,
    /// Admin API calls at once when the gateway has no `POST /config`.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: u16,
    #[command(flatten)]
    pub display: ChangeDisplayArgs,
}

pub fn run(args: &SyncArgs) -> Result<ExitCode, CommandError> {
    output::report_errors_as_json(args.gateway.json_output, &[], sync(args))
}

fn sync(args: &SyncArgs) -> Result<ExitCode, CommandError> {
    let options = args
        .display
        .prepare_options(&args.gateway, args.no_deletes, true);
    let prepared = reconcile::prepare(&args.files, &args.gateway, options)?;
    let result = apply(args, &prepared);
    reconcile::release(prepared);
    result
}

/// Apply the prepared plan: in one batch, else entity by entity.
fn apply(args: &SyncArgs, prepared: &Prepared) -> Result<ExitCode, CommandError> {
    let style = Style::for_stdout(args.display.no_color);
    if prepared.plan.is_empty() {
        progress::clear();
        print_result(args, prepared, &style);
        return Ok(ExitCode::SUCCESS);
    }
    let applier = Applier::new(
        &prepared.client,
        &prepared.plan,
        &prepared.built.config,
        &prepared.live.config,
        &prepared.built.origins,
    )
    .naming(&prepared.outside);
    progress::phase("reading the entities outside the select tags");
    let kept = kept_entities(args, prepared);
    progress::phase("sending the configuration");
    if let Some(keep) = kept? {
        let applied = applier.apply_atomic(&keep);
        progress::clear();
        match applied {
            Ok(AtomicOutcome::Applied) => {
                crate::timing::mark("applied in one batch");
                print_result(args, prepared, &style);
                return Ok(ExitCode::SUCCESS);
            }
            Ok(AtomicOutcome::Unsupported) => {}
            Err(error) => return reject(args, prepared, error),
        }
    }
    progress::clear();
    let progress = Progress::new(
        style,
        !args.gateway.json_output,
        !args.gateway.json_output && std::io::stdout().is_terminal(),
    );
    let report =
        applier.apply_per_entity(usize::from(args.parallelism), args.no_deletes, &progress);
    Ok(finish_per_entity(args, prepared, &report, &style))
}

/// The live entities a `POST /config` must carry along: those outside the
/// select tags and, with --no-deletes, those the files leave out. `None`
/// when the gateway cannot tell its whole configuration (a real Kong).
fn kept_entities(
    args: &SyncArgs,
    prepared: &Prepared,
) -> Result<Option<PackedConfig>, CommandError> {
    let mut keep = PackedConfig::default();
    if !prepared.built.select_tags.is_empty() {
        match state::fetch_whole_config(&prepared.client) {
            Ok(whole) => keep = state::outside_selection(&whole, &prepared.live.config),
            Err(error)
                if error
                    .client_error()
                    .is_some_and(|e| e.is_unsupported_endpoint()) =>
            {
                return Ok(None)
            }
            Err(error) => return Err(CommandError::user(error.to_string())),
        }
    }
    if args.no_deletes {
        for kind in schemas::EntityKind::ALL {
            let live = prepared.live.config.entities(kind).iter().cloned();
            keep.entities_mut(kind).extend(live);
        }
    }
    Ok(Some(keep))
}

/// The whole plan applied (or nothing to apply): lines and summary.
fn print_result(args: &SyncArgs, prepared: &Prepared, style: &Style) {
    let counts = prepared.plan.counts();
    if args.gateway.json_output {
        let report = output::json_report(&prepared.plan.changes, &counts, &prepared.warnings, &[]);
        output::print_json(&report);
    } else {
        output::print_text(&prepared.plan.changes, &counts, style);
    }
}

/// A rejected `POST /config` (nothing changed) or an unreachable gateway:
/// an error, reported in the JSON report too with --json-output.
fn reject(
    args: &SyncArgs,
    prepared: &Prepared,
    error: ApplyError,
) -> Result<ExitCode, CommandError> {
    let error = CommandError::user(error.to_string());
    if !args.gateway.json_output {
        return Err(error);
    }
    let errors = [error.message.clone()];
    let report = output::json_report([], &Counts::default(), &prepared.warnings, &errors);
    output::print_json(&report);
    error.print();
    Ok(error.exit_code())
}

/// Print what the per-entity run applied, its summary and its errors.
fn finish_per_entity(
    args: &SyncArgs,
    prepared: &Prepared,
    report: &RunReport,
    style: &Style,
) -> ExitCode {
    let failure = (!report.errors.is_empty()).then(|| {
        let total = prepared.plan.changes.len();
        let applied = report.applied.len();
        CommandError::user(format!(
            "{} of {total} changes applied; {} failed and {} were not attempted",
            applied,
            report.errors.len(),
            report.dropped
        ))
        .with_details(report.errors.clone())
    });
    if args.gateway.json_output {
        let applied = report
            .applied
            .iter()
            .map(|index| &prepared.plan.changes[*index]);
        let errors = failure
            .as_ref()
            .map(|f| [f.details.clone(), vec![f.message.clone()]].concat())
            .unwrap_or_default();
        let json = output::json_report(applied, &report.counts, &prepared.warnings, &errors);
        output::print_json(&json);
    } else {
        println!("{}", output::summary_text(&report.counts, style));
    }
    match failure {
        Some(error) => {
            error.print();
            error.exit_code()
        }
        None => ExitCode::SUCCESS,
    }
}
