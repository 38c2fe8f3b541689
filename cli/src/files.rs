//! Reading decK files and building them into one canonical configuration,
//! shared by every subcommand that takes files.

use schemas::file::build::{self, BuildOptions, Built, Diagnostic, Flattened};
use schemas::file::load::{load_inputs, LoadError, SourceDoc};
use schemas::file::template::ProcessEnv;
use schemas::packed::PackedConfig;

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
    /// What reading skipped (`{% include %}` tags of Markdown pages), one
    /// line each; printed to stderr already.
    pub warnings: Vec<String>,
}

/// What the files are read for: the text for inputs that hold nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `validate`: name the empty inputs.
    Validate,
    /// `diff` and `sync`: decK's text (a sync of nothing would delete
    /// everything; `reset` is the way to do that).
    Sync,
}

/// Read the files (`-` or nothing for stdin; directories walked; Markdown
/// blocks extracted), with `${{ env "DECK_X" }}` taken from the environment.
/// Warnings go to stderr.
pub fn read(paths: &[String], purpose: Purpose) -> Result<Files, CommandError> {
    let mut stdin = std::io::stdin().lock();
    match load_inputs(paths, &mut stdin, &ProcessEnv) {
        Ok(loaded) => {
            let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
            print_lines(&warnings);
            Ok(Files {
                docs: loaded.docs,
                env_values: loaded
                    .substitutions
                    .into_iter()
                    .map(|substitution| substitution.value)
                    .collect(),
                warnings,
            })
        }
        Err(LoadError::Empty { inputs, warnings }) if purpose == Purpose::Validate => {
            print_lines(&warnings.iter().map(ToString::to_string).collect::<Vec<_>>());
            Err(nothing_to_validate(&inputs))
        }
        Err(error) => Err(CommandError::user("the files could not be read")
            .with_details(error.to_string().lines().map(str::to_owned).collect())),
    }
}

/// `validate` of inputs that hold no configuration: each one named.
fn nothing_to_validate(inputs: &[String]) -> CommandError {
    let details = inputs
        .iter()
        .map(|input| {
            let markdown = [".md", ".markdown"]
                .iter()
                .any(|ext| input.to_ascii_lowercase().ends_with(ext));
            if markdown {
                format!("{input}: the page has no {{% entity_examples %}} blocks")
            } else {
                format!("{input}: the file holds no configuration (it is empty or only comments)")
            }
        })
        .collect();
    CommandError::user("nothing to validate").with_details(details)
}

fn print_lines(lines: &[String]) {
    crate::progress::suspend(|| {
        for line in lines {
            eprintln!("{line}");
        }
    });
}

/// Build the files against `current` (the live state, or empty offline).
/// Warnings go to stderr; errors become one command error listing them all.
/// The documents are consumed: their values become the entities, so a
/// large file is not held twice.
#[cfg(test)]
pub fn build_config(
    docs: Vec<SourceDoc>,
    current: &schemas::config::Config,
    select_tags: &[String],
) -> Result<Built, CommandError> {
    let options = BuildOptions {
        select_tags: select_tags.to_vec(),
        ..BuildOptions::default()
    };
    let current = PackedConfig::pack(current);
    build_flattened(
        build::flatten(docs, &options),
        &current,
        &PackedConfig::default(),
    )
}

/// The first part of a build, which needs no live state: done while the
/// live state is read. With `partial_apply` (`--no-deletes`) references
/// may name any live entity; otherwise only what the sync keeps. Without
/// `origins` (a diff, which applies nothing) the build records none.
pub fn flatten(
    docs: Vec<SourceDoc>,
    select_tags: &[String],
    partial_apply: bool,
    origins: bool,
) -> Flattened {
    let options = BuildOptions {
        select_tags: select_tags.to_vec(),
        partial_apply,
        without_origins: !origins,
    };
    build::flatten(docs, &options)
}

/// The rest of the build, against `current` (the live state within the
/// select tags) and `outside` (live entities outside them that references
/// name by id).
pub fn build_flattened(
    flattened: Flattened,
    current: &PackedConfig,
    outside: &PackedConfig,
) -> Result<Built, CommandError> {
    match flattened.build_with(current, outside) {
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
