//! Reading decK files and building them into one canonical configuration,
//! shared by every subcommand that takes files.

use schemas::config::Config;
use schemas::file::build::{self, BuildOptions, Built, Diagnostic, Flattened};
use schemas::file::load::{load_inputs, SourceDoc};
use schemas::file::template::ProcessEnv;

use crate::error::CommandError;

/// What the files hold: their documents, and the values substituted from
/// `DECK_*` variables, which `diff` and `sync` show as `[masked]` (as decK
/// does) unless `--no-mask-deck-env-vars-value`.
#[derive(Debug, Clone, Default)]
pub struct Files {
    /// The documents, in input order.
    pub docs: Vec<SourceDoc>,
    /// The values of the `DECK_*` variables the files read, each once.
    pub env_values: Vec<String>,
}

/// Read the files (`-` or nothing for stdin; directories walked; Markdown
/// blocks extracted), with `${{ env "DECK_X" }}` taken from the environment.
pub fn read(paths: &[String]) -> Result<Files, CommandError> {
    let mut stdin = std::io::stdin().lock();
    match load_inputs(paths, &mut stdin, &ProcessEnv) {
        Ok(loaded) => Ok(Files {
            docs: loaded.docs,
            env_values: loaded
                .substitutions
                .into_iter()
                .map(|substitution| substitution.value)
                .collect(),
        }),
        Err(error) => Err(CommandError::user("the files could not be read")
            .with_details(error.to_string().lines().map(str::to_owned).collect())),
    }
}

/// Build the files against `current` (the live state, or empty offline).
/// Warnings go to stderr; errors become one command error listing them all.
/// The documents are consumed: their values become the entities, so a
/// large file is not held twice.
pub fn build_config(
    docs: Vec<SourceDoc>,
    current: &Config,
    select_tags: &[String],
) -> Result<Built, CommandError> {
    build_flattened(flatten(docs, select_tags), current)
}

/// The first part of [`build_config`], which needs no live state: done
/// while the live state is read.
pub fn flatten(docs: Vec<SourceDoc>, select_tags: &[String]) -> Flattened {
    let options = BuildOptions {
        select_tags: select_tags.to_vec(),
    };
    build::flatten(docs, &options)
}

/// The rest of [`build_config`], against `current`.
pub fn build_flattened(flattened: Flattened, current: &Config) -> Result<Built, CommandError> {
    match flattened.build(current) {
        Ok(built) => {
            print_warnings(&built.warnings);
            Ok(built)
        }
        Err(diagnostics) => Err(invalid_files(&diagnostics)),
    }
}

fn print_warnings(warnings: &[Diagnostic]) {
    crate::progress::suspend(|| {
        for warning in warnings {
            eprintln!("{warning}");
        }
    });
}

fn invalid_files(diagnostics: &[Diagnostic]) -> CommandError {
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == schemas::file::build::Severity::Error)
        .count();
    let noun = if errors == 1 { "error" } else { "errors" };
    CommandError::user(format!("the files are invalid: {errors} {noun}"))
        .with_details(diagnostics.iter().map(ToString::to_string).collect())
}
