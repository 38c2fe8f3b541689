//! The pieces put together must be the whole parse: same values, same
//! position of every node and key.

use proptest::prelude::*;
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
    assert_same(&cut, text);
}

/// `cut` is what the whole parse of `text` gives, node by node.
fn assert_same(cut: &[YamlDoc], text: &str) {
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
    assert!(text.len() > LIMITS.min_bytes);
    assert_same_as_whole(&text);
}

#[test]
fn indentless_sequences_are_cut_too() {
    let text = deck_file(4_000, 8_000, 0);
    assert!(text.len() > LIMITS.min_bytes);
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

/// Small cuts, so generated texts exercise them.
const SMALL: Limits = Limits {
    min_bytes: 0,
    min_items: 2,
};

/// A scalar as a YAML author might write it: plain, now and then with
/// YAML's indicators (which may end a line oddly or not parse at all), or
/// double- or single-quoted with quotes and indicators inside.
fn scalar() -> impl Strategy<Value = String> {
    let plain = "[a-z0-9][a-z0-9 ./_-]{0,9}";
    let odd = "[a-z0-9 :#{}\\[\\],|>-]{0,10}";
    let quoted = "[a-z0-9 :#'\"{}\\[\\],|>-]{0,10}";
    prop_oneof![
        6 => plain.prop_map(|text| text),
        1 => odd.prop_map(|text| text),
        3 => quoted.prop_map(|text| serde_json::to_string(&text).unwrap_or_default()),
        3 => quoted.prop_map(|text| format!("'{}'", text.replace('\'', "''"))),
    ]
}

/// One item of a sequence at indentation `pad`: a mapping of a few
/// fields, one of them a nested list.
fn item(pad: &'static str) -> impl Strategy<Value = String> {
    (
        scalar(),
        scalar(),
        proptest::collection::vec(scalar(), 0..3),
    )
        .prop_map(move |(name, url, tags)| {
            let mut text = format!("{pad}- name: {name}\n{pad}  url: {url}\n");
            if !tags.is_empty() {
                text.push_str(&format!("{pad}  tags:\n"));
                for tag in tags {
                    text.push_str(&format!("{pad}    - {tag}\n"));
                }
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Whatever the items hold, the cut parse is the whole parse or
    /// declines; it never answers differently, nor where the whole parse
    /// fails.
    #[test]
    fn a_cut_parse_is_the_whole_parse_or_none(
        services in proptest::collection::vec(item("  "), 2..12),
        consumers in proptest::collection::vec(item(""), 2..12),
        comment in any::<bool>(),
    ) {
        let mut text = String::from("_format_version: \"3.0\"\nservices:\n");
        for service in &services {
            text.push_str(service);
            if comment {
                text.push_str("# between\n\n");
            }
        }
        text.push_str("consumers:\n");
        text.extend(consumers);
        let whole = yaml::parse_documents_at(&text, 0);
        match (parse_with(&text, SMALL), whole) {
            (None, _) => {}
            (Some(cut), Ok(_)) => assert_same(&cut, &text),
            (Some(_), Err(error)) => panic!("cut where the whole parse fails: {error}"),
        }
    }
}
