//! Request path normalization (Kong's `kong.tools.uri.normalize` with merged
//! slashes) and the re-escaping applied to the upstream path.
//!
//! Routes are matched against the *normalized* path so that `/a/%2E%2E/b`,
//! `/a/../b` and `/b` all select the same route, and so that a prefix route
//! cannot be bypassed with encoded dots.

use std::fmt::Write as _;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

/// Characters that keep their meaning only while percent-encoded (RFC 3986
/// gen-delims and sub-delims, plus `%` itself). Their escapes are left
/// encoded (with uppercase hex); every other escape is decoded.
const RESERVED: &[u8] = b"!*'();:@&=+$,/?%#[]";

/// Characters Kong percent-encodes when it sends the path upstream: every
/// byte outside `! # $ & ' ( ) * + , / : ; = ? @ [ ] A-Z a-z 0-9 - _ . ~ %`
/// (non-ASCII bytes are always encoded by `utf8_percent_encode`).
const UPSTREAM_ESCAPED: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Normalizes a raw request path (no query) the way Kong does before routing:
///
/// 1. percent-escapes are decoded, except those of reserved characters
///    (`%2F` stays `%2F`, with its hex digits uppercased); unreserved
///    characters such as `%2E` → `.` and `%7E` → `~` are always decoded;
/// 2. dot segments are removed (RFC 3986 §5.2.4; `..` never climbs above
///    the root) and runs of `/` are merged into one.
///
/// Malformed escapes (`%zz`, a trailing `%`) are kept verbatim. Decoded bytes
/// that do not form valid UTF-8 are re-encoded as `%XX`, so the result is
/// always a `String`. Runs in linear time and never panics.
pub fn normalize_path(raw: &str) -> String {
    if raw.is_empty() || raw == "/" {
        return raw.to_owned();
    }
    let decoded = decode_unreserved(raw.as_bytes());
    let without_dots = remove_dot_segments(&decoded);
    utf8_or_escaped(&without_dots)
}

/// Percent-encodes the characters that may not appear in an HTTP request
/// target, leaving existing `%XX` escapes alone (Kong's `uri.escape`).
pub(crate) fn escape_upstream_path(path: &str) -> String {
    utf8_percent_encode(path, UPSTREAM_ESCAPED).to_string()
}

/// Decodes every `%XX` escape except those of reserved characters.
fn decode_unreserved(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&first, tail)) = rest.split_first() {
        match (first, escaped_byte(tail)) {
            (b'%', Some(byte)) if RESERVED.contains(&byte) => {
                out.push(b'%');
                out.extend(tail[..2].iter().map(u8::to_ascii_uppercase));
                rest = &tail[2..];
            }
            (b'%', Some(byte)) => {
                out.push(byte);
                rest = &tail[2..];
            }
            _ => {
                out.push(first);
                rest = tail;
            }
        }
    }
    out
}

/// The byte encoded by the two hex digits at the start of `hex`, if any.
fn escaped_byte(hex: &[u8]) -> Option<u8> {
    match hex {
        [high, low, ..] => Some((hex_value(*high)? << 4) | hex_value(*low)?),
        _ => None,
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|value| value as u8)
}

/// RFC 3986 `remove_dot_segments`, plus merging of `//` into `/`.
///
/// Output segments are kept with their leading `/`; `segment_starts` records
/// where each begins so that `..` can drop the last one in O(1).
fn remove_dot_segments(input: &[u8]) -> Vec<u8> {
    let mut output = Vec::with_capacity(input.len());
    let mut segment_starts = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        match rest {
            b"/." => rest = b"/",
            b"/.." => {
                pop_segment(&mut output, &mut segment_starts);
                rest = b"/";
            }
            b"." | b".." => rest = b"",
            [b'.', b'.', b'/', tail @ ..] | [b'.', b'/', tail @ ..] => rest = tail,
            [b'/', b'.', b'/', ..] => rest = &rest[2..],
            [b'/', b'.', b'.', b'/', ..] => {
                pop_segment(&mut output, &mut segment_starts);
                rest = &rest[3..];
            }
            [b'/', b'/', ..] => rest = &rest[1..],
            _ => {
                let end = segment_end(rest);
                segment_starts.push(output.len());
                output.extend_from_slice(&rest[..end]);
                rest = &rest[end..];
            }
        }
    }
    output
}

/// Length of the first segment of `rest`: up to (not including) the next `/`
/// after its first byte.
fn segment_end(rest: &[u8]) -> usize {
    rest.iter()
        .skip(1)
        .position(|&byte| byte == b'/')
        .map_or(rest.len(), |offset| offset + 1)
}

fn pop_segment(output: &mut Vec<u8>, segment_starts: &mut Vec<usize>) {
    if let Some(start) = segment_starts.pop() {
        output.truncate(start);
    }
}

/// Converts to a `String`, re-encoding bytes that are not valid UTF-8.
fn utf8_or_escaped(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn root_and_empty_are_unchanged() {
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path(""), "");
    }

    #[test]
    fn plain_paths_are_unchanged() {
        for path in [
            "/foo",
            "/foo/",
            "/foo/bar",
            "/a-b_c~d",
            "/foo.bar/.baz/..qux",
        ] {
            assert_eq!(normalize_path(path), path);
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_in_either_case() {
        assert_eq!(normalize_path("/%41%62c%7e%2d%5F"), "/Abc~-_");
        assert_eq!(normalize_path("/route%2E/req"), "/route./req");
        assert_eq!(normalize_path("/route%2e/req"), "/route./req");
    }

    #[test]
    fn reserved_escapes_stay_encoded_and_uppercased() {
        assert_eq!(normalize_path("/a%2fb"), "/a%2Fb");
        assert_eq!(normalize_path("/a%3Fb%23c%25d"), "/a%3Fb%23c%25d");
        assert_eq!(normalize_path("/a%2F..%2Fb"), "/a%2F..%2Fb");
    }

    #[test]
    fn other_escapes_are_decoded_like_kong() {
        assert_eq!(normalize_path("/hello%20world"), "/hello world");
        assert_eq!(normalize_path("/caf%C3%A9"), "/café");
    }

    #[test]
    fn invalid_escapes_are_kept() {
        assert_eq!(normalize_path("/a%zz/b%4"), "/a%zz/b%4");
        assert_eq!(normalize_path("/a%"), "/a%");
        assert_eq!(normalize_path("/%%41"), "/%A");
    }

    #[test]
    fn decoded_bytes_that_are_not_utf8_are_reencoded() {
        assert_eq!(normalize_path("/a%ff%FEb"), "/a%FF%FEb");
        assert_eq!(normalize_path("/%C3"), "/%C3");
        assert_eq!(normalize_path("/%C3%A9%C3"), "/é%C3");
    }

    #[test]
    fn dot_segments_are_removed() {
        let cases = [
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/../../c", "/c"),
            ("/a/%2e%2E/b", "/b"),
            ("/a/.%2e/b", "/b"),
            ("/..", "/"),
            ("/../..", "/"),
            ("/../../a", "/a"),
            ("/.", "/"),
            ("/a/.b/..c/", "/a/.b/..c/"),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize_path(raw), expected, "{raw}");
        }
    }

    #[test]
    fn slashes_are_merged() {
        assert_eq!(normalize_path("//a///b//"), "/a/b/");
        assert_eq!(normalize_path("/a/..//b"), "/b");
    }

    #[test]
    fn relative_inputs_do_not_panic() {
        assert_eq!(normalize_path("."), "");
        assert_eq!(normalize_path(".."), "");
        assert_eq!(normalize_path("../a"), "a");
        assert_eq!(normalize_path("a/../b"), "/b");
        assert_eq!(normalize_path("*"), "*");
    }

    #[test]
    fn very_long_paths_are_handled() {
        let deep = "/a".repeat(50_000) + &"/..".repeat(60_000) + "/end";
        assert_eq!(normalize_path(&deep), "/end");
        let wide = "/".to_owned() + &"%41".repeat(100_000);
        assert_eq!(normalize_path(&wide).len(), 100_001);
    }

    #[test]
    fn upstream_escaping_keeps_escapes_and_reserved_characters() {
        assert_eq!(escape_upstream_path("/a b/é"), "/a%20b/%C3%A9");
        assert_eq!(escape_upstream_path("/a%2Fb/c;d=e"), "/a%2Fb/c;d=e");
        assert_eq!(escape_upstream_path("/x{y}|\"z\""), "/x%7By%7D%7C%22z%22");
    }

    proptest! {
        #[test]
        fn normalization_never_panics(raw in "\\PC*|[/.%a-fA-F0-9]{0,40}") {
            let _ = normalize_path(&raw);
        }

        #[test]
        fn normalization_without_escapes_is_idempotent(raw in "[/.a-z]{0,40}") {
            let once = normalize_path(&raw);
            prop_assert_eq!(normalize_path(&once), once.clone());
        }

        #[test]
        fn normalized_paths_have_no_dot_segments_or_double_slashes(raw in "/[/.%2eE]{0,30}") {
            let path = normalize_path(&raw);
            prop_assert!(!path.contains("//"), "{}", path);
            prop_assert!(!path.contains("/./") && !path.contains("/../"), "{}", path);
            prop_assert!(!path.ends_with("/.") && !path.ends_with("/.."), "{}", path);
        }
    }
}
