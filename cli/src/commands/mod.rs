//! The subcommands, one file each, and the flags they share.

mod diff;
mod dump;
mod reset;
mod sync;
mod validate;

use std::process::ExitCode;

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

/// How to reach the gateway's Admin API.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// Admin API address of the gateway.
    #[arg(long, env = "GWCTL_ADDR", default_value = "http://127.0.0.1:8001")]
    pub addr: String,
    /// Extra header sent with every Admin API request, as 'Name: value'
    /// (repeatable), e.g. 'Kong-Admin-Token: secret'.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Seconds to wait for each Admin API request.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Only manage entities carrying all these tags (repeatable); also read
    /// from `_info.select_tags` in the files.
    #[arg(long = "select-tag", value_name = "TAG")]
    pub select_tags: Vec<String>,
    /// Print machine-readable JSON instead of text.
    #[arg(long)]
    pub json_output: bool,
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
    /// command's own.
    fn prepare_options(
        &self,
        gateway: &GatewayArgs,
        no_deletes: bool,
        refuse_sanitized: bool,
    ) -> PrepareOptions {
        PrepareOptions {
            plan: PlanOptions {
                show_secrets: self.show_secrets,
                no_deletes,
                entity_fields: gateway.json_output,
            },
            refuse_sanitized,
            show_env_values: self.no_mask_deck_env_vars_value,
        }
    }
}
