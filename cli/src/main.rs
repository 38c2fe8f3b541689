//! `gwctl`: keep a gateway's configuration equal to decK files kept in git.
//!
//! Exit codes: 0 success, 1 error, 2 differences found by
//! `diff --non-zero-exit-code`.

mod allocator;
mod apply;
mod client;
mod commands;
mod error;
mod export;
mod files;
mod names;
mod output;
mod plan;
mod progress;
mod reconcile;
mod secrets;
mod state;
mod timing;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    allocator::configure();
    timing::start();
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(error) => {
            progress::clear();
            error.print();
            error.exit_code()
        }
    }
}
