//! `gwctl sync`.

use std::process::ExitCode;

use clap::Args;

use super::GatewayArgs;
use crate::error::CommandError;

/// Not yet available.
#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

pub fn run(_args: &SyncArgs) -> Result<ExitCode, CommandError> {
    Err(CommandError::user("gwctl sync is not yet available"))
}
