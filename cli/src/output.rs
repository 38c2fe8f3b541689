//! What diff, sync and reset print: decK's lines and summary block as text
//! (coloured on a terminal), or one JSON report with `--json-output`.
//!
//! Text:
//!
//! ```text
//! creating service svc1
//! updating plugin key-auth for service svc1
//!   config.key_names: ["apikey"] -> ["key"]
//! deleting route old-route
//! Summary:
//!   Created: 1
//!   Updated: 1
//!   Deleted: 1
//! ```
//!
//! JSON: `{"changes": {"creating": [..], "updating": [..], "deleting": [..]},
//! "summary": {"creating", "updating", "deleting", "total"}, "warnings": [..],
//! "errors": [..]}`, each change `{"kind", "name", "fields": [{"path",
//! "old", "new"}]}`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use serde_json::{json, Value};

use crate::error::CommandError;
use crate::plan::{Action, Change, Counts};
use crate::secrets::MASK;

const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// Whether to colour the text output.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    color: bool,
}

impl Style {
    /// Colour only when stdout is a terminal, `--no-color` is not given
    /// and `NO_COLOR` is not set.
    pub fn for_stdout(no_color: bool) -> Self {
        let wanted = !no_color && std::env::var_os("NO_COLOR").is_none();
        Self {
            color: wanted && std::io::stdout().is_terminal(),
        }
    }

    /// No colour at all.
    #[cfg(test)]
    pub fn plain() -> Self {
        Self { color: false }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("{code}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }
}

/// A change as text: its title line and, for an update, one indented
/// `path: old -> new` line per changed field.
pub fn change_text(change: &Change, style: &Style) -> String {
    let colour = match change.action {
        Action::Create => GREEN,
        Action::Update => YELLOW,
        Action::Delete => RED,
    };
    let mut text = style.paint(colour, &change.title());
    if change.action == Action::Update {
        for field in &change.fields {
            text.push_str(&format!(
                "\n  {}: {} -> {}",
                field.path,
                render_value(&field.old),
                render_value(&field.new)
            ));
        }
    }
    text
}

/// A field value as shown in update lines: compact JSON, `[masked]` bare.
pub fn render_value(value: &Value) -> String {
    match value {
        Value::String(text) if text == MASK => MASK.to_owned(),
        other => other.to_string(),
    }
}

/// decK's summary block, without a final newline.
pub fn summary_text(counts: &Counts, style: &Style) -> String {
    let block = format!(
        "Summary:\n  Created: {}\n  Updated: {}\n  Deleted: {}",
        counts.created, counts.updated, counts.deleted
    );
    if style.color {
        format!("{BOLD}{GREEN}{block}{RESET}")
    } else {
        block
    }
}

/// Print changes and the summary to stdout.
pub fn print_text<'a>(
    changes: impl IntoIterator<Item = &'a Change>,
    counts: &Counts,
    style: &Style,
) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for change in changes {
        // A closed pipe (`gwctl diff | head`) is not an error worth a panic.
        let _ = writeln!(out, "{}", change_text(change, style));
    }
    let _ = writeln!(out, "{}", summary_text(counts, style));
}

/// The `--json-output` report.
pub fn json_report<'a>(
    changes: impl IntoIterator<Item = &'a Change>,
    counts: &Counts,
    warnings: &[String],
    errors: &[String],
) -> Value {
    let mut creating = Vec::new();
    let mut updating = Vec::new();
    let mut deleting = Vec::new();
    for change in changes {
        let list = match change.action {
            Action::Create => &mut creating,
            Action::Update => &mut updating,
            Action::Delete => &mut deleting,
        };
        list.push(change_json(change));
    }
    json!({
        "changes": {"creating": creating, "updating": updating, "deleting": deleting},
        "summary": {
            "creating": counts.created,
            "updating": counts.updated,
            "deleting": counts.deleted,
            "total": counts.total(),
        },
        "warnings": warnings,
        "errors": errors,
    })
}

fn change_json(change: &Change) -> Value {
    let fields: Vec<Value> = change
        .fields
        .iter()
        .map(|field| json!({"path": field.path, "old": field.old, "new": field.new}))
        .collect();
    json!({"kind": change.kind.deck_kind(), "name": change.name, "fields": fields})
}

/// Print a JSON report to stdout, followed by a newline.
pub fn print_json(report: &Value) {
    let text = serde_json::to_string_pretty(report).unwrap_or_default();
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// With `--json-output`, an error still produces a report (with the error
/// under `errors`) on stdout before it ends the command with exit 1.
pub fn report_errors_as_json(
    json_output: bool,
    warnings: &[String],
    result: Result<ExitCode, CommandError>,
) -> Result<ExitCode, CommandError> {
    if let (true, Err(error)) = (json_output, &result) {
        let mut errors = error.details.clone();
        errors.push(error.message.clone());
        print_json(&json_report([], &Counts::default(), warnings, &errors));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::FieldChange;
    use schemas::EntityKind;

    fn update() -> Change {
        Change {
            action: Action::Update,
            kind: EntityKind::Plugin,
            id: "p1".to_owned(),
            name: "key-auth for service svc1".to_owned(),
            fields: vec![
                FieldChange {
                    path: "config.key_names".to_owned(),
                    old: json!(["apikey"]),
                    new: json!(["key"]),
                },
                FieldChange {
                    path: "config.secret".to_owned(),
                    old: json!(MASK),
                    new: json!(MASK),
                },
            ],
        }
    }

    #[test]
    fn updates_list_their_fields() {
        assert_eq!(
            change_text(&update(), &Style::plain()),
            "updating plugin key-auth for service svc1\n  config.key_names: [\"apikey\"] -> [\"key\"]\n  config.secret: [masked] -> [masked]"
        );
    }

    #[test]
    fn creates_are_one_line_and_coloured_only_when_asked() {
        let create = Change {
            action: Action::Create,
            kind: EntityKind::Service,
            id: "s1".to_owned(),
            name: "svc1".to_owned(),
            fields: vec![FieldChange {
                path: "host".to_owned(),
                old: Value::Null,
                new: json!("example.com"),
            }],
        };
        assert_eq!(
            change_text(&create, &Style::plain()),
            "creating service svc1"
        );
        let coloured = change_text(&create, &Style { color: true });
        assert_eq!(coloured, "\x1b[32mcreating service svc1\x1b[0m");
    }

    #[test]
    fn summary_is_decks_block() {
        let counts = Counts {
            created: 1,
            updated: 2,
            deleted: 3,
        };
        assert_eq!(
            summary_text(&counts, &Style::plain()),
            "Summary:\n  Created: 1\n  Updated: 2\n  Deleted: 3"
        );
    }

    #[test]
    fn json_report_has_decks_shape() {
        let change = update();
        let counts = Counts {
            created: 0,
            updated: 1,
            deleted: 0,
        };
        let report = json_report([&change], &counts, &[], &[]);
        assert_eq!(
            report["summary"],
            json!({"creating": 0, "updating": 1, "deleting": 0, "total": 1})
        );
        assert_eq!(report["changes"]["creating"], json!([]));
        assert_eq!(
            report["changes"]["updating"][0]["fields"][0],
            json!({"path": "config.key_names", "old": ["apikey"], "new": ["key"]})
        );
        assert_eq!(report["changes"]["updating"][0]["kind"], "plugin");
        assert_eq!(report["errors"], json!([]));
        assert_eq!(report["warnings"], json!([]));
    }
}
