//! `gwctl dump`: the gateway's configuration as a decK file.

use std::fs::OpenOptions;
use std::io::Write;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::Value;

use super::GatewayArgs;
use crate::error::CommandError;
use crate::export::{self, ExportOptions};
use crate::reconcile;

/// Write the gateway's configuration as a decK file (`_format_version:
/// "3.0"`), nested as people write them: routes and plugins under their
/// service, credentials and plugins under their consumer.
///
/// Defaults and timestamps are left out, and ids too where a name
/// identifies the entity, so `gwctl sync` of the dump against the same
/// gateway changes nothing. Synced onto an emptied gateway (after `gwctl
/// reset`), such a dump recreates every entity under a new id, and files
/// that pin ids then differ from it (a delete and a create each). For a
/// backup that restores the configuration exactly, ids included, dump
/// with --with-id.
/// A dump holds the secrets (credential keys, session secrets) in clear;
/// --sanitize masks them for sharing, and `gwctl sync` refuses such a
/// file. With --select-tag only the entities carrying all the tags are
/// written, and the tags go to `_info.select_tags`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Where to write the file (created with mode 0600: it holds secrets);
    /// `-` writes to stdout.
    #[arg(
        short = 'o',
        long = "output-file",
        value_name = "FILE",
        default_value = "-"
    )]
    pub output: String,
    /// The file format (--json-output also picks JSON).
    #[arg(long, value_enum, default_value_t = DumpFormat::Yaml)]
    pub format: DumpFormat,
    /// Keep every entity's id, also where a name identifies it: the dump
    /// then restores the configuration exactly (a backup).
    #[arg(long)]
    pub with_id: bool,
    /// Write fields that hold their default value too.
    #[arg(long)]
    pub with_defaults: bool,
    /// Replace secrets with `[sanitized:<hash>]` markers, for sharing.
    #[arg(long)]
    pub sanitize: bool,
}

/// The format of a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DumpFormat {
    Yaml,
    Json,
}

pub fn run(args: &DumpArgs) -> Result<ExitCode, CommandError> {
    let client = reconcile::connect(&args.gateway)?;
    let live = reconcile::fetch_state::<Value>(&client, &args.gateway.select_tags)?;
    let options = ExportOptions {
        with_id: args.with_id,
        with_defaults: args.with_defaults,
        sanitize: args.sanitize,
        select_tags: args.gateway.select_tags.clone(),
    };
    let document = export::document(&live.config, &options);
    // --json-output (shared by every command) asks for JSON here too.
    let format = if args.gateway.json_output {
        DumpFormat::Json
    } else {
        args.format
    };
    let text = render(&document, format)?;
    write_output(&args.output, &text)?;
    Ok(ExitCode::SUCCESS)
}

fn render(document: &Value, format: DumpFormat) -> Result<String, CommandError> {
    let rendered = match format {
        DumpFormat::Yaml => serde_yaml_ng::to_string(document).map_err(|e| e.to_string()),
        DumpFormat::Json => serde_json::to_string_pretty(document)
            .map(|text| text + "\n")
            .map_err(|e| e.to_string()),
    };
    rendered.map_err(|error| CommandError::internal(format!("writing the dump: {error}")))
}

fn write_output(output: &str, text: &str) -> Result<(), CommandError> {
    let failed = |error: std::io::Error| CommandError::user(format!("writing {output}: {error}"));
    if output == "-" {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        return out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(failed);
    }
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(output).map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)
}
