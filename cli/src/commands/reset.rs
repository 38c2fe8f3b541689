//! `gwctl reset`.

use std::process::ExitCode;

use clap::Args;

use super::GatewayArgs;
use crate::error::CommandError;

/// Not yet available.
#[derive(Debug, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

pub fn run(_args: &ResetArgs) -> Result<ExitCode, CommandError> {
    Err(CommandError::user("gwctl reset is not yet available"))
}
