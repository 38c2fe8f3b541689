//! The subcommands, one file each, and the flags they share.

mod diff;
mod dump;
mod reset;
mod sync;
mod validate;

use std::process::ExitCode;

pub use crate::client::GatewayArgs;
use clap::{Args, Parser, Subcommand};

use crate::error::CommandError;
use crate::plan::PlanOptions;
use crate::reconcile::PrepareOptions;

/// Keep a gateway's configuration equal to decK files kept in git.
#[derive(Debug, Parser)]
#[command(name = "gwctl", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Validate(validate::ValidateArgs),
    Diff(diff::DiffArgs),
    Sync(sync::SyncArgs),
    Dump(dump::DumpArgs),
    Reset(reset::ResetArgs),
}

/// Run the chosen subcommand.
pub fn run(cli: Cli) -> Result<ExitCode, CommandError> {
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Sync(args) => sync::run(&args),
        Command::Dump(args) => dump::run(&args),
        Command::Reset(args) => reset::run(&args),
    }
}

/// How `diff` and `sync` show the changes they find.
#[derive(Debug, Clone, Args)]
pub struct ChangeDisplayArgs {
    /// Show secret values (credential keys, session secrets) in the
    /// changes instead of [masked].
    #[arg(long)]
    pub show_secrets: bool,
    /// Show values substituted from `DECK_*` environment variables as
    /// they are; by default they are shown as [masked], as decK does.
    #[arg(long)]
    pub no_mask_deck_env_vars_value: bool,
    /// Never colour the output (it is coloured only on a terminal anyway).
    #[arg(long)]
    pub no_color: bool,
}

impl ChangeDisplayArgs {
    /// The options to prepare a plan with: these display choices plus the
    /// command's own; `applies` for a sync, which refuses sanitized files
    /// and names the files' entities by origin when a change fails.
    fn prepare_options(
        &self,
        gateway: &GatewayArgs,
        no_deletes: bool,
        applies: bool,
    ) -> PrepareOptions {
        PrepareOptions {
            plan: PlanOptions {
                show_secrets: self.show_secrets,
                no_deletes,
                entity_fields: gateway.json_output,
            },
            refuse_sanitized: applies,
            origins: applies,
            show_env_values: self.no_mask_deck_env_vars_value,
        }
    }
}
