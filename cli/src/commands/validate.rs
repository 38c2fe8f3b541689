//! `gwctl validate`: check files offline, with every rule of the entity and
//! plugin schemas, references and duplicate identities.

use std::process::ExitCode;

use clap::Args;
use schemas::packed::{Packed, PackedConfig};
use schemas::EntityKind;
use serde_json::json;

use crate::error::CommandError;
use crate::files;
use crate::output;
use crate::reconcile;

/// Check decK files (YAML, JSON, docs blocks or Markdown) without a
/// gateway. Reports every problem as `file:line:column: entity: message`
/// and exits 1 if there is any.
///
/// References must name entities of the files (a sync deletes the rest),
/// so a partial file is checked together with the files it builds on.
/// With select tags, a reference by id may also name a gateway entity
/// outside them, which only a sync can look up: a warning here.
/// `_format_version` may be left out: gwctl reads only format 3.0, and a
/// file without it is read as 3.0; when given, it must be "3.0".
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files or directories to check; `-` (or nothing) reads stdin.
    /// Markdown files contribute their `{% entity_examples %}` blocks,
    /// applied one after the other as the docs apply them.
    pub files: Vec<String>,
    /// Only consider entities with these tags (as in sync).
    #[arg(long = "select-tag", value_name = "TAG")]
    pub select_tags: Vec<String>,
    /// Print one JSON report instead of text: `{"valid", "entities",
    /// "warnings", "errors"}` (the text lines), exit code as without.
    #[arg(long)]
    pub json_output: bool,
}

/// What a successful check found.
struct Checked {
    entities: usize,
    warnings: Vec<String>,
}

pub fn run(args: &ValidateArgs) -> Result<ExitCode, CommandError> {
    let checked = check(args);
    crate::progress::clear();
    match (checked, args.json_output) {
        (Ok(checked), false) => {
            let count = checked.entities;
            let noun = if count == 1 { "entity" } else { "entities" };
            println!("{count} {noun} checked, no errors");
            Ok(ExitCode::SUCCESS)
        }
        (Ok(checked), true) => {
            output::print_json(&json!({
                "valid": true,
                "entities": checked.entities,
                "warnings": checked.warnings,
                "errors": [],
            }));
            Ok(ExitCode::SUCCESS)
        }
        (Err(error), true) => {
            let mut errors = error.details.clone();
            errors.push(error.message.clone());
            output::print_json(&json!({
                "valid": false,
                "entities": 0,
                "warnings": [],
                "errors": errors,
            }));
            Err(error)
        }
        (Err(error), false) => Err(error),
    }
}

fn check(args: &ValidateArgs) -> Result<Checked, CommandError> {
    crate::progress::phase("reading the files");
    let files = files::read(&args.files, files::Purpose::Validate)?;
    let selecting = !reconcile::select_tags(&files.docs, &args.select_tags).is_empty();
    let flattened = files::flatten(files.docs, &args.select_tags, false, false);
    let mut warnings = files.warnings;
    let mut outside = PackedConfig::default();
    if selecting {
        for (kind, id) in flattened.ids_to_look_up(&PackedConfig::default()) {
            let warning = not_checked_offline(kind, &id);
            crate::progress::suspend(|| eprintln!("{warning}"));
            warnings.push(warning);
            outside
                .entities_mut(kind)
                .push(Packed::new(&json!({ "id": id })));
        }
    }
    crate::progress::phase("building the files");
    let built = files::build_flattened(flattened, &PackedConfig::default(), &outside)?;
    warnings.extend(built.warnings.iter().map(ToString::to_string));
    let entities = built.config.len();
    // The process exits next, which frees the entities faster than
    // dropping them one by one would.
    std::mem::forget(built);
    Ok(Checked { entities, warnings })
}

/// A reference by id to an entity the files lack, which with select tags
/// may be a gateway entity outside them (a sync looks it up).
fn not_checked_offline(kind: EntityKind, id: &str) -> String {
    format!(
        "warning: {} {id} is not in these files: with select tags it may be a gateway entity \
         outside them, which `gwctl sync` looks up; not checked offline",
        kind.deck_kind()
    )
}
