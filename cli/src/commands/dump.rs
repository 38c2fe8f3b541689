//! `gwctl dump`.

use std::process::ExitCode;

use clap::Args;

use super::GatewayArgs;
use crate::error::CommandError;

/// Not yet available.
#[derive(Debug, Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

pub fn run(_args: &DumpArgs) -> Result<ExitCode, CommandError> {
    Err(CommandError::user("gwctl dump is not yet available"))
}
