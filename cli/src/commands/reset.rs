//! `gwctl reset`: delete every entity (within the select tags).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Args;
use schemas::packed::PackedConfig;

use super::GatewayArgs;
use crate::apply::{Applier, AtomicOutcome, Progress};
use crate::error::CommandError;
use crate::output::{self, Style};
use crate::plan::{self, Plan, PlanOptions};
use crate::reconcile;
use crate::state::{self, LiveState};

/// Delete every service, route, consumer, plugin and credential from the
/// gateway, or with --select-tag only those carrying all the tags.
/// Refuses to run without --force.
///
/// Against this project's gateway everything goes in one transaction
/// (`POST /config`); otherwise entity by entity, child first.
#[derive(Debug, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Really delete (reset refuses to run without it).
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Admin API calls at once when the gateway has no `POST /config`.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: u16,
    /// Never colour the output (it is coloured only on a terminal anyway).
    #[arg(long)]
    pub no_color: bool,
}

pub fn run(args: &ResetArgs) -> Result<ExitCode, CommandError> {
    output::report_errors_as_json(args.gateway.json_output, &[], reset(args))
}

fn reset(args: &ResetArgs) -> Result<ExitCode, CommandError> {
    if !args.force {
        return Err(CommandError::user(
            "reset deletes every entity from the gateway (within the select tags); \
             run it again with --force to do so",
        ));
    }
    let client = reconcile::connect(&args.gateway)?;
    let mut live = reconcile::fetch_state(&client, &args.gateway.select_tags)?;
    let empty = PackedConfig::default();
    let options = PlanOptions {
        entity_fields: args.gateway.json_output,
        ..PlanOptions::default()
    };
    let mut plan = plan::plan(&empty, &live.config, &options);
    reconcile::print_warnings(&plan.warnings);
    live.warnings.append(&mut plan.warnings);
    let style = Style::for_stdout(args.no_color);
    if plan.is_empty() {
        print_result(args, &plan, &live, &style);
        return Ok(ExitCode::SUCCESS);
    }
    let origins = Default::default();
    let applier = Applier::new(&client, &plan, &empty, &live.config, &origins);
    if let Some(keep) = kept_entities(args, &client, &live)? {
        match applier.apply_atomic(&keep) {
            Ok(AtomicOutcome::Applied) => {
                print_result(args, &plan, &live, &style);
                return Ok(ExitCode::SUCCESS);
            }
            Ok(AtomicOutcome::Unsupported) => {}
            Err(error) => return Err(CommandError::user(error.to_string())),
        }
    }
    let json = args.gateway.json_output;
    let progress = Progress::new(style, !json, !json && std::io::stdout().is_terminal());
    let report = applier.apply_per_entity(usize::from(args.parallelism), false, &progress);
    if json {
        let applied = report.applied.iter().map(|index| &plan.changes[*index]);
        output::print_json(&output::json_report(
            applied,
            &report.counts,
            &live.warnings,
            &report.errors,
        ));
    } else {
        println!("{}", output::summary_text(&report.counts, &style));
    }
    if report.errors.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let error = CommandError::user(format!(
        "{} of {} deletes failed",
        report.errors.len(),
        plan.changes.len()
    ))
    .with_details(report.errors);
    error.print();
    Ok(error.exit_code())
}

/// What a `POST /config` keeps: the entities outside the select tags.
/// `None` when the gateway cannot tell its whole configuration.
fn kept_entities(
    args: &ResetArgs,
    client: &crate::client::AdminClient,
    live: &LiveState,
) -> Result<Option<PackedConfig>, CommandError> {
    if args.gateway.select_tags.is_empty() {
        return Ok(Some(PackedConfig::default()));
    }
    match state::fetch_whole_config(client) {
        Ok(whole) => Ok(Some(state::outside_selection(&whole, &live.config))),
        Err(error)
            if error
                .client_error()
                .is_some_and(|e| e.is_unsupported_endpoint()) =>
        {
            Ok(None)
        }
        Err(error) => Err(CommandError::user(error.to_string())),
    }
}

fn print_result(args: &ResetArgs, plan: &Plan, live: &LiveState, style: &Style) {
    let counts = plan.counts();
    if args.gateway.json_output {
        output::print_json(&output::json_report(
            &plan.changes,
            &counts,
            &live.warnings,
            &[],
        ));
    } else {
        output::print_text(&plan.changes, &counts, style);
    }
}
