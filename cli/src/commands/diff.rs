//! `gwctl diff`.

use std::process::ExitCode;

use clap::Args;

use super::GatewayArgs;
use crate::error::CommandError;

/// Not yet available.
#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

pub fn run(_args: &DiffArgs) -> Result<ExitCode, CommandError> {
    Err(CommandError::user("gwctl diff is not yet available"))
}
