//! The declarative file loader and builder, as `gwctl validate`/`sync` and
//! `gateway serve --config` run them: `load_text` (YAML/JSON, the docs'
//! block form, Markdown with `{% entity_examples %}` blocks, `${{ env
//! "DECK_*" }}` templating) and then `build` (flattening, ids,
//! references, schemas, duplicates).
//!
//! The first byte picks the origin's extension (`.yaml` or `.md`); the
//! rest is the file text. Nothing may panic; a successful build must give
//! a configuration that serializes to JSON.

#![no_main]

use libfuzzer_sys::fuzz_target;
use schemas::config::Config;
use schemas::file::build::{build, BuildOptions};
use schemas::file::load::load_text;
use schemas::packed::PackedConfig;
use schemas::EntityKind;

/// Two variables for templating, everything else unset.
fn env(name: &str) -> Option<String> {
    match name {
        "DECK_HOST" => Some("example.internal".to_owned()),
        "DECK_KEY" => Some("s3cr3t: {x} # not a comment".to_owned()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let origin = if mode % 2 == 0 {
        "kong.yaml"
    } else {
        "guide.md"
    };
    let Ok(loaded) = load_text(origin, text, &env) else {
        return;
    };
    if let Ok(built) = build(&loaded.docs, &Config::default(), &BuildOptions::default()) {
        // The packed entities read back as values that pack to the same
        // text, keys and comparison.
        let config = built.config.unpack();
        let repacked = PackedConfig::pack(&config);
        for kind in EntityKind::ALL {
            let pairs = built.config.entities(kind).iter().zip(repacked.entities(kind));
            for (built, again) in pairs {
                assert_eq!(built.text(), again.text());
                assert_eq!(built.keys(kind), again.keys(kind));
                assert!(built.same_fields(again));
            }
        }
        serde_json::to_string(&config).expect("a built config serializes");
    }
});
