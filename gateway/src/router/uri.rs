//! The path sent upstream, from `service.path` and `strip_path` (Kong's
//! `get_upstream_uri_v0`), and the `X-Forwarded-Prefix` value.
//!
//! `path_handling: v1` is ignored, as `traditional_compatible` ignores it.
//! The query string is not handled here: the proxy appends it verbatim.

use super::path::escape_upstream_path;
use super::RouteMatch;

/// The upstream path for a matched request, already escaped for the request
/// line (characters such as spaces that normalization decoded are
/// percent-encoded again; existing `%XX` escapes are kept).
///
/// `service_path` is the service's `path` (`None` means `/`). With
/// `strip_path`, the matched prefix (for a regex, the whole match) is removed
/// and the rest is appended to the service path; a leading `./` or `../`
/// left by the cut is dropped, so `/route../x` cannot climb above the
/// service path. Without `strip_path`, the whole normalized request path is
/// appended. Slashes are joined so that neither `//` nor a missing `/`
/// appears at the seam, and a trailing `/` on the request is kept.
pub fn upstream_path(service_path: Option<&str>, m: &RouteMatch, strip_path: bool) -> String {
    let base = service_path.unwrap_or("/");
    let request_path = m.normalized_path.as_str();
    let postfix = sanitize_postfix(request_postfix(m, strip_path));
    let joined = if base.ends_with('/') {
        join_onto_slash_base(base, request_path, postfix, strip_path)
    } else {
        join_onto_bare_base(base, request_path, postfix, strip_path)
    };
    escape_upstream_path(&joined)
}

/// The `X-Forwarded-Prefix` to send: the stripped prefix, only when
/// `strip_path` removed something other than `/`.
pub fn forwarded_prefix(m: &RouteMatch, strip_path: bool) -> Option<&str> {
    let prefix = m.matched_prefix.as_deref()?;
    (strip_path && !prefix.is_empty() && prefix != "/").then_some(prefix)
}

/// What follows the stripped prefix; without stripping (or without a
/// matched path) Kong uses the path minus its first character.
fn request_postfix(m: &RouteMatch, strip_path: bool) -> &str {
    let path = m.normalized_path.as_str();
    let cut = match m.matched_prefix.as_deref() {
        Some(prefix) if strip_path => prefix.len(),
        _ => 1,
    };
    path.get(cut..).unwrap_or("")
}

/// Drops a leading `.`/`..` segment left over after cutting the prefix.
fn sanitize_postfix(postfix: &str) -> &str {
    match postfix {
        "." | ".." => "",
        _ => postfix
            .strip_prefix("./")
            .or_else(|| postfix.strip_prefix("../"))
            .unwrap_or(postfix),
    }
}

/// `service.path` ends with `/` (including the default `/`).
fn join_onto_slash_base(base: &str, request_path: &str, postfix: &str, strip: bool) -> String {
    let base_without_slash = base.strip_suffix('/').unwrap_or(base);
    if !strip {
        return format!("{base}{}", request_path.get(1..).unwrap_or(""));
    }
    if postfix.is_empty() {
        return if base == "/" || request_path.ends_with('/') {
            base.to_owned()
        } else {
            base_without_slash.to_owned()
        };
    }
    if postfix.starts_with('/') {
        format!("{base_without_slash}{postfix}")
    } else {
        format!("{base}{postfix}")
    }
}

/// `service.path` does not end with `/`.
fn join_onto_bare_base(base: &str, request_path: &str, postfix: &str, strip: bool) -> String {
    if !strip {
        return if request_path == "/" {
            base.to_owned()
        } else {
            format!("{base}{request_path}")
        };
    }
    if postfix.is_empty() {
        let keep_trailing_slash = request_path.len() > 1 && request_path.ends_with('/');
        return if keep_trailing_slash {
            format!("{base}/")
        } else {
            base.to_owned()
        };
    }
    if postfix.starts_with('/') {
        format!("{base}{postfix}")
    } else {
        format!("{base}/{postfix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_sanitizing() {
        assert_eq!(sanitize_postfix(""), "");
        assert_eq!(sanitize_postfix("."), "");
        assert_eq!(sanitize_postfix(".."), "");
        assert_eq!(sanitize_postfix("./req"), "req");
        assert_eq!(sanitize_postfix("../req"), "req");
        assert_eq!(sanitize_postfix(".../req"), ".../req");
        assert_eq!(sanitize_postfix("/req"), "/req");
    }
}
