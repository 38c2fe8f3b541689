//! The pieces put together must be the whole parse: same values, same
//! position of every node and key.

use serde_json::Value;

use super::*;
use crate::file::pos::PathSeg;

/// A decK file of `services` services (each with a route and a plugin)
/// and `consumers` consumers, items indented by `indent` spaces.
fn deck_file(services: usize, consumers: usize, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut text = String::from("_format_version: \"3.0\"\n# the services\nservices:\n");
    for index in 0..services {
        text.push_str(&format!(
            "{pad}- name: service-{index}\n{pad}  url: http://127.0.0.1:9/{index}\n\
             {pad}  tags: [a, b]\n{pad}  routes:\n{pad}    - name: route-{index}\n\
             {pad}      paths: [/r/{index}]\n{pad}  plugins:\n{pad}    - name: key-auth\n\
             {pad}      config:\n{pad}        key_names: [\"apikey\"]\n"
        ));
        if index % 100 == 0 {
            text.push_str(&format!("{pad}# a comment between items\n\n"));
        }
    }
    text.push_str("consumers:\n");
    for index in 0..consumers {
        text.push_str(&format!(
            "{pad}- username: user-{index}\n{pad}  keyauth_credentials:\n{pad}    - key: 'k-{index}'\n"
        ));
    }
    text.push_str("plugins:\n  - name: prometheus\n");
    text
}

/// Every path of `value`, root first.
fn paths(value: &Value, at: &mut Vec<PathSeg>, out: &mut Vec<Vec<PathSeg>>) {
    out.push(at.clone());
    match value {
        Value::Object(members) => {
            for (key, member) in members {
                at.push(PathSeg::Key(key.clone()));
                paths(member, at, out);
                at.pop();
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                at.push(PathSeg::Index(index));
                paths(item, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn assert_same_as_whole(text: &str) {
    let cut = parse(text).expect("the text is cut");
    let whole = yaml::parse_documents_at(text, 0).expect("the text parses");
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0].value, whole[0].value);
    let mut all = Vec::new();
    paths(&whole[0].value, &mut Vec::new(), &mut all);
    for path in &all {
        assert_eq!(
            cut[0].positions.exact(path),
            whole[0].positions.exact(path),
            "{path:?}"
        );
        assert_eq!(
            cut[0].positions.lookup_key(path),
            whole[0].positions.lookup_key(path),
            "key of {path:?}"
        );
    }
}

#[test]
fn a_large_file_cut_in_runs_parses_as_the_whole() {
    let text = deck_file(3_000, 6_000, 2);
    assert!(text.len() > MIN_BYTES);
    assert_same_as_whole(&text);
}

#[test]
fn indentless_sequences_are_cut_too() {
    let text = deck_file(4_000, 8_000, 0);
    assert!(text.len() > MIN_BYTES);
    assert_same_as_whole(&text);
}

#[test]
fn what_could_blur_an_item_boundary_is_parsed_whole() {
    let base = deck_file(3_000, 6_000, 2);
    let open_quote = base.replace(
        "url: http://127.0.0.1:9/7\n",
        "url: \"http://127.0.0.1:9/7\n  - x\"\n",
    );
    let anchored = base.replace("tags: [a, b]", "tags: &t [a, b]");
    let documents = format!("{base}---\na: 1\n");
    let flow_root = format!("{{\"a\": 1}}\n{base}");
    for text in [open_quote, anchored, documents, flow_root] {
        assert!(parse(&text).is_none());
    }
    assert!(
        parse(&deck_file(10, 10, 2)).is_none(),
        "small texts are parsed whole"
    );
}

#[test]
fn a_bad_item_leaves_the_error_to_the_whole_parse() {
    let text = deck_file(3_000, 6_000, 2).replace(
        "- username: user-4000\n",
        "- username: user-4000\n    username: twice\n",
    );
    assert!(parse(&text).is_none());
    let error = yaml::parse_documents(&text).unwrap_err();
    assert_eq!(error, yaml::parse_documents_at(&text, 0).unwrap_err());
}

#[test]
fn nesting_is_capped_as_in_the_whole_parse() {
    let deep = |levels: usize| {
        let mut item = String::from("x");
        for _ in 0..levels {
            item = format!("[{item}]");
        }
        deck_file(3_000, 6_000, 2).replace("tags: [a, b]", &format!("tags: {item}"))
    };
    // The root mapping, `services`, the item and its `tags`: four levels.
    let allowed = yaml::MAX_DEPTH - 3;
    assert!(yaml::parse_documents(&deep(allowed)).is_ok());
    let too_deep = deep(allowed + 1);
    assert_eq!(
        yaml::parse_documents(&too_deep).unwrap_err(),
        yaml::parse_documents_at(&too_deep, 0).unwrap_err()
    );
}
