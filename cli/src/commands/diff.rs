//! `gwctl diff`: what `gwctl sync` would change, without changing it.

use std::process::ExitCode;

use clap::Args;

use super::{ChangeDisplayArgs, GatewayArgs};
use crate::error::CommandError;
use crate::output::{self, Style};
use crate::reconcile;

/// Compare decK files with the gateway's configuration and list what
/// `gwctl sync` would create, update and delete, in the order it would.
///
/// Each line names the entity as decK does (`creating service svc1`,
/// `updating plugin key-auth for service svc1`); an update lists only the
/// changed fields as `path: old -> new`. Secrets, and values taken from
/// `DECK_*` environment variables, are shown as `[masked]`.
/// The files are checked first; only GET requests reach the gateway.
/// Exit codes: 0 (also with differences), 1 on error, 2 with
/// --non-zero-exit-code when there are differences.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Files or directories to compare; `-` (or nothing) reads stdin.
    /// Markdown files contribute their `{% entity_examples %}` blocks,
    /// applied one after the other as the docs apply them.
    pub files: Vec<String>,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Exit with code 2 when there are differences (drift checks in CI).
    #[arg(long)]
    pub non_zero_exit_code: bool,
    /// Leave out deletes, as `gwctl sync --no-deletes` would.
    #[arg(long)]
    pub no_deletes: bool,
    #[command(flatten)]
    pub display: ChangeDisplayArgs,
}

pub fn run(args: &DiffArgs) -> Result<ExitCode, CommandError> {
    output::report_errors_as_json(args.gateway.json_output, &[], diff(args))
}

fn diff(args: &DiffArgs) -> Result<ExitCode, CommandError> {
    let options = args
        .display
        .prepare_options(&args.gateway, args.no_deletes, false);
    let prepared = reconcile::prepare(&args.files, &args.gateway, options)?;
    crate::progress::clear();
    let counts = prepared.plan.counts();
    if args.gateway.json_output {
        let report = output::json_report(&prepared.plan.changes, &counts, &prepared.warnings, &[]);
        output::print_json(&report);
    } else {
        output::print_text(
            &prepared.plan.changes,
            &counts,
            &Style::for_stdout(args.display.no_color),
        );
    }
    crate::timing::mark("printed");
    reconcile::release(prepared);
    if args.non_zero_exit_code && counts.total() > 0 {
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
