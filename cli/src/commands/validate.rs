//! `gwctl validate`: check files offline, with every rule of the entity and
//! plugin schemas, references and duplicate identities.

use std::process::ExitCode;

use clap::Args;
use schemas::config::Config;

use crate::error::CommandError;
use crate::files;

/// Check decK files (YAML, JSON, docs blocks or Markdown) without a
/// gateway. Reports every problem as `file:line:column: entity: message`
/// and exits 1 if there is any.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files or directories to check; `-` (or nothing) reads stdin.
    /// Markdown files contribute their `{% entity_examples %}` blocks.
    pub files: Vec<String>,
    /// Only consider entities with these tags (as in sync).
    #[arg(long = "select-tag", value_name = "TAG")]
    pub select_tags: Vec<String>,
}

pub fn run(args: &ValidateArgs) -> Result<ExitCode, CommandError> {
    crate::progress::phase("reading the files");
    let files = files::read(&args.files)?;
    crate::progress::phase("building the files");
    let built = files::build_config(files.docs, &Config::default(), &args.select_tags)?;
    crate::progress::clear();
    let count = built.config.len();
    let noun = if count == 1 { "entity" } else { "entities" };
    println!("{count} {noun} checked, no errors");
    // The process exits next, which frees the entities faster than
    // dropping them one by one would.
    std::mem::forget(built);
    Ok(ExitCode::SUCCESS)
}
