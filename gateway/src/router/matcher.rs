//! Compiled matchers: one per (route, path), each with its Kong priority.
//!
//! A route's non-path conditions (methods, hosts, SNIs, headers) are compiled
//! once into [`Conditions`] and shared by all of the route's matchers; each
//! matcher adds at most one path, as Kong's `split_routes_and_services_by_path`
//! gives every path length (and the regexes) its own priority.
//!
//! Field values are compiled with [`schemas::matching`], the functions the
//! route schema validates with: whatever the schema accepted compiles here.

use std::borrow::Cow;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use regex::{Captures, Regex};
use schemas::matching::{
    canonical_header_name, compile_header_value, compile_path, split_host_port,
    CompiledHeaderValue, CompiledPath, HostName, RouteHost,
};
use schemas::model::Route;
use uuid::Uuid;

use super::path::normalize_path;
use super::{RequestInfo, RouterError, UriCaptures};

/// A request reduced to what matching needs, computed once per lookup.
#[derive(Debug)]
pub(super) struct PreparedRequest<'a> {
    pub method: &'a str,
    /// Lowercased host name, without its port.
    pub host: Cow<'a, str>,
    /// The Host header's port, or else the listener port.
    pub port: u16,
    /// The normalized path (see [`normalize_path`]).
    pub path: String,
    pub headers: &'a HeaderMap,
    pub tls: bool,
    pub sni: Option<&'a str>,
}

impl<'a> PreparedRequest<'a> {
    pub fn new(info: &RequestInfo<'a>) -> Self {
        let (host, host_port) = split_host_port(info.host);
        let host = if host.bytes().any(|byte| byte.is_ascii_uppercase()) {
            Cow::Owned(host.to_ascii_lowercase())
        } else {
            Cow::Borrowed(host)
        };
        PreparedRequest {
            method: info.method,
            host,
            port: host_port.unwrap_or(info.port),
            path: normalize_path(info.path),
            headers: info.headers,
            tls: info.tls,
            sni: info.sni,
        }
    }
}

/// What a successful match found beyond "it matched".
#[derive(Debug)]
pub(super) struct Hit {
    /// The host that matched named a port (`example.com:8443`).
    pub port_specific_host: bool,
    /// `None` for a route without paths.
    pub path: Option<PathHit>,
}

#[derive(Debug)]
pub(super) struct PathHit {
    /// The prefix itself, or the whole regex match.
    pub matched: String,
    pub captures: UriCaptures,
}

/// One route path, ready to run against a normalized request path.
#[derive(Debug)]
pub(super) enum PathPattern {
    /// A plain byte prefix: `/foo` also matches `/foobar`.
    Prefix(String),
    /// `~/re` compiled as `^/re`: anchored at the start only.
    Regex {
        regex: Regex,
        /// Text every match must start with (see [`literal_prefix`]).
        literal_prefix: String,
    },
}

impl PathPattern {
    fn compile(route_id: Uuid, path: &str) -> Result<Self, RouterError> {
        let compiled = compile_path(path).map_err(|source| RouterError::InvalidPathRegex {
            route_id,
            path: path.to_owned(),
            source,
        })?;
        Ok(match compiled {
            CompiledPath::Prefix(prefix) => PathPattern::Prefix(prefix),
            CompiledPath::Regex(regex) => PathPattern::Regex {
                regex,
                literal_prefix: literal_prefix(path.strip_prefix('~').unwrap_or(path)).to_owned(),
            },
        })
    }

    /// A string every matching path starts with, to index this pattern by;
    /// `None` when nothing useful is known.
    pub fn index_key(&self) -> Option<&str> {
        match self {
            PathPattern::Prefix(prefix) => Some(prefix),
            PathPattern::Regex { literal_prefix, .. } if !literal_prefix.is_empty() => {
                Some(literal_prefix)
            }
            PathPattern::Regex { .. } => None,
        }
    }

    fn find(&self, path: &str) -> Option<PathHit> {
        match self {
            PathPattern::Prefix(prefix) => path.starts_with(prefix.as_str()).then(|| PathHit {
                matched: prefix.clone(),
                captures: UriCaptures::default(),
            }),
            PathPattern::Regex { regex, .. } => regex_hit(regex, path),
        }
    }
}

/// The literal text that every match of `^pattern` starts with: the leading
/// run of plain characters, minus the last one if a quantifier may make it
/// optional. Conservative: `""` if the pattern has a `|` anywhere (a
/// top-level alternation is not anchored, as in Kong's `^a|b`).
fn literal_prefix(pattern: &str) -> &str {
    if pattern.contains('|') {
        return "";
    }
    let is_plain = |c: char| c.is_ascii_alphanumeric() || "/-_~%=,;:@!&'".contains(c);
    let end = pattern
        .find(|c: char| !is_plain(c))
        .unwrap_or(pattern.len());
    let (literal, rest) = pattern.split_at(end);
    if rest.starts_with(['?', '*', '{']) {
        // All plain characters are ASCII, so this cuts at a char boundary.
        &literal[..literal.len().saturating_sub(1)]
    } else {
        literal
    }
}

/// Runs a regex path. `find` rejects a miss in nanoseconds, whereas
/// `captures` costs far more even on a miss, so it only runs on a hit.
fn regex_hit(regex: &Regex, path: &str) -> Option<PathHit> {
    let whole = regex.find(path)?;
    let captures = if regex.captures_len() > 1 {
        regex
            .captures(path)
            .map(|groups| uri_captures(regex, &groups))?
    } else {
        UriCaptures::default()
    };
    Some(PathHit {
        matched: whole.as_str().to_owned(),
        captures,
    })
}

fn uri_captures(regex: &Regex, groups: &Captures<'_>) -> UriCaptures {
    let unnamed = groups
        .iter()
        .skip(1)
        .map(|group| group.map_or_else(String::new, |m| m.as_str().to_owned()))
        .collect();
    let named = regex
        .capture_names()
        .flatten()
        .filter_map(|name| Some((name.to_owned(), groups.name(name)?.as_str().to_owned())))
        .collect();
    UriCaptures { named, unnamed }
}

/// One entry of a route's `hosts`, lowercased, with its optional port.
#[derive(Debug)]
pub(super) struct HostPattern {
    pub name: HostName,
    pub port: Option<u16>,
}

impl HostPattern {
    fn parse(raw: &str) -> Self {
        let RouteHost { name, port } = RouteHost::parse(raw);
        HostPattern { name, port }
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        self.port.is_none_or(|wanted| wanted == port)
            && match &self.name {
                HostName::Exact(exact) => host == exact,
                HostName::Suffix(suffix) => host.ends_with(suffix.as_str()),
                HostName::Prefix(prefix) => host.starts_with(prefix.as_str()),
            }
    }
}

/// One header name with its accepted values (any value may match).
#[derive(Debug)]
struct HeaderRule {
    /// `None` when the configured name is not a valid header name (the
    /// schema refuses those; one stored before it did never matches).
    name: Option<HeaderName>,
    values: Vec<HeaderValuePattern>,
}

#[derive(Debug)]
enum HeaderValuePattern {
    /// Compared ASCII-case-insensitively, as Kong lowercases both sides.
    Exact(String),
    /// From a `~*re` value: a case-insensitive, unanchored regex.
    Regex(Regex),
}

impl HeaderRule {
    fn compile(route_id: Uuid, name: &str, values: &[String]) -> Result<Self, RouterError> {
        let values = values
            .iter()
            .map(|value| HeaderValuePattern::compile(route_id, name, value))
            .collect::<Result<_, _>>()?;
        Ok(HeaderRule {
            name: header_name(name),
            values,
        })
    }

    fn matches(&self, headers: &HeaderMap) -> bool {
        let Some(name) = &self.name else {
            return false;
        };
        headers
            .get_all(name)
            .iter()
            .any(|value| self.values.iter().any(|pattern| pattern.matches(value)))
    }
}

/// The name a route's header rule looks requests up by (Kong treats `_`
/// and `-` alike), or `None` if it is no valid header name.
pub(super) fn header_name(configured: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(canonical_header_name(configured).as_bytes()).ok()
}

impl HeaderValuePattern {
    fn compile(route_id: Uuid, header: &str, value: &str) -> Result<Self, RouterError> {
        let compiled =
            compile_header_value(value).map_err(|source| RouterError::InvalidHeaderRegex {
                route_id,
                header: header.to_owned(),
                source,
            })?;
        Ok(match compiled {
            CompiledHeaderValue::Exact(exact) => HeaderValuePattern::Exact(exact),
            CompiledHeaderValue::Regex(regex) => HeaderValuePattern::Regex(regex),
        })
    }

    fn matches(&self, value: &HeaderValue) -> bool {
        match self {
            HeaderValuePattern::Exact(expected) => {
                value.as_bytes().eq_ignore_ascii_case(expected.as_bytes())
            }
            HeaderValuePattern::Regex(regex) => {
                regex.is_match(&String::from_utf8_lossy(value.as_bytes()))
            }
        }
    }
}

/// A route's conditions other than its paths; all present ones must hold.
#[derive(Debug)]
pub(super) struct Conditions {
    methods: Vec<String>,
    pub hosts: Vec<HostPattern>,
    snis: Vec<SniPattern>,
    headers: Vec<HeaderRule>,
}

impl Conditions {
    fn compile(route: &Route) -> Result<Self, RouterError> {
        let headers = route
            .headers
            .iter()
            .flatten()
            .map(|(name, values)| HeaderRule::compile(route.id, name, values))
            .collect::<Result<_, _>>()?;
        Ok(Conditions {
            methods: route.methods.clone().unwrap_or_default(),
            hosts: route
                .hosts
                .iter()
                .flatten()
                .map(|h| HostPattern::parse(h))
                .collect(),
            snis: route
                .snis
                .iter()
                .flatten()
                .map(|sni| SniPattern::parse(sni))
                .collect(),
            headers,
        })
    }

    /// `Some(port_specific)` when every condition holds.
    fn check(&self, request: &PreparedRequest<'_>) -> Option<bool> {
        let method_ok = self.methods.is_empty() || self.methods.iter().any(|m| m == request.method);
        if !method_ok || !self.sni_matches(request) {
            return None;
        }
        let port_specific = self.host_match(&request.host, request.port)?;
        let headers_ok = self
            .headers
            .iter()
            .all(|rule| rule.matches(request.headers));
        headers_ok.then_some(port_specific)
    }

    /// `None` if no host matches; `Some(true)` if a port-specific one does.
    fn host_match(&self, host: &str, port: u16) -> Option<bool> {
        if self.hosts.is_empty() {
            return Some(false);
        }
        let mut matching = self
            .hosts
            .iter()
            .filter(|pattern| pattern.matches(host, port));
        let first = matching.next()?;
        Some(first.port.is_some() || matching.any(|pattern| pattern.port.is_some()))
    }

    /// SNIs only constrain TLS requests (Kong issue #6425).
    fn sni_matches(&self, request: &PreparedRequest<'_>) -> bool {
        if !request.tls || self.snis.is_empty() {
            return true;
        }
        let Some(sni) = request.sni.map(canonical_sni) else {
            return false;
        };
        self.snis.iter().any(|pattern| pattern.matches(&sni))
    }

    fn has_port_specific_host(&self) -> bool {
        self.hosts.iter().any(|pattern| pattern.port.is_some())
    }
}

/// A route's SNI: exact, `*.example.test` (any name ending in
/// `.example.test`) or `example.*` (any name starting with `example.`), as
/// Kong's router reads them (`router/transform.lua`: postfix and prefix
/// matching).
#[derive(Debug, Clone, PartialEq, Eq)]
enum SniPattern {
    Exact(String),
    Suffix(String),
    Prefix(String),
}

impl SniPattern {
    fn parse(sni: &str) -> Self {
        let lower = sni.to_ascii_lowercase();
        if let Some(prefix) = lower.strip_suffix('*') {
            return SniPattern::Prefix(prefix.to_owned());
        }
        let canonical = canonical_sni(&lower);
        match canonical.strip_prefix('*') {
            Some(suffix) => SniPattern::Suffix(suffix.to_owned()),
            None => SniPattern::Exact(canonical),
        }
    }

    /// Whether the (canonical) `sni` matches.
    fn matches(&self, sni: &str) -> bool {
        match self {
            SniPattern::Exact(exact) => sni == exact,
            SniPattern::Suffix(suffix) => {
                sni.len() > suffix.len() && sni.ends_with(suffix.as_str())
            }
            SniPattern::Prefix(prefix) => {
                sni.len() > prefix.len() && sni.starts_with(prefix.as_str())
            }
        }
    }
}

/// Lowercased, without the trailing dot of a fully qualified name.
fn canonical_sni(sni: &str) -> String {
    let trimmed = if sni.len() > 1 {
        sni.strip_suffix('.').unwrap_or(sni)
    } else {
        sni
    };
    trimmed.to_ascii_lowercase()
}

/// One route path (or a pathless route) with everything needed to match it.
#[derive(Debug)]
pub(super) struct Matcher {
    pub route: Arc<Route>,
    pub service_id: Option<Uuid>,
    pub conditions: Arc<Conditions>,
    pub path: Option<PathPattern>,
    /// Kong's 64-bit priority (see [`priority`]); higher wins.
    pub priority: u64,
    /// Position of the path in `route.paths`, to keep Kong's order among a
    /// route's equally ranked regexes.
    pub path_position: usize,
    /// `protocols` has `https` but not `http`: plain requests need an upgrade.
    pub https_only: bool,
    pub has_port_specific_host: bool,
}

impl Matcher {
    /// Compiles one matcher per path of `route` (one in all if it has none).
    pub fn compile_route(
        route: &Arc<Route>,
        service_id: Option<Uuid>,
    ) -> Result<Vec<Matcher>, RouterError> {
        let conditions = Arc::new(Conditions::compile(route)?);
        let paths: Vec<Option<&str>> = match route.paths.as_deref() {
            Some(paths) if !paths.is_empty() => paths.iter().map(|p| Some(p.as_str())).collect(),
            _ => vec![None],
        };
        paths
            .into_iter()
            .enumerate()
            .map(|(path_position, path)| {
                Ok(Matcher {
                    route: Arc::clone(route),
                    service_id,
                    conditions: Arc::clone(&conditions),
                    path: path
                        .map(|p| PathPattern::compile(route.id, p))
                        .transpose()?,
                    priority: priority(route, path),
                    path_position,
                    https_only: is_https_only(route),
                    has_port_specific_host: conditions.has_port_specific_host(),
                })
            })
            .collect()
    }

    /// Runs every condition, cheapest first, and the path last.
    pub fn try_match(&self, request: &PreparedRequest<'_>) -> Option<Hit> {
        let port_specific_host = self.conditions.check(request)?;
        let path = match &self.path {
            Some(pattern) => Some(pattern.find(&request.path)?),
            None => None,
        };
        Some(Hit {
            port_specific_host,
            path,
        })
    }

    /// The exact (non-wildcard) host names this matcher requires, if all of
    /// its hosts are exact; used to index it by host.
    pub fn exact_host_names(&self) -> Option<Vec<&str>> {
        let hosts = &self.conditions.hosts;
        if hosts.is_empty() {
            return None;
        }
        let mut names: Vec<&str> = hosts
            .iter()
            .map(|pattern| match &pattern.name {
                HostName::Exact(name) => Some(name.as_str()),
                HostName::Suffix(_) | HostName::Prefix(_) => None,
            })
            .collect::<Option<_>>()?;
        names.sort_unstable();
        names.dedup();
        Some(names)
    }
}

/// Whether the router of the HTTP subsystem takes this route at all: stream
/// routes (tcp, tls, udp, tls_passthrough) belong to another listener.
pub(super) fn is_http_subsystem_route(route: &Route) -> bool {
    route
        .protocols
        .iter()
        .any(|protocol| matches!(protocol.as_str(), "http" | "https" | "grpc" | "grpcs"))
}

fn is_https_only(route: &Route) -> bool {
    let has = |wanted: &str| route.protocols.iter().any(|p| p == wanted);
    has("https") && !has("http")
}

const MATCH_WEIGHT_SHIFT: u32 = 61;
const PLAIN_HOSTS_BIT: u64 = 1 << 60;
const HEADER_COUNT_SHIFT: u32 = 52;
const MAX_HEADER_COUNT: u64 = 255;
const REGEX_BIT: u64 = 1 << 51;
const REGEX_PRIORITY_SHIFT: u32 = 19;
const MAX_PREFIX_LENGTH: u64 = 0x7FFFF;

/// Kong's `traditional_compatible` priority of `route` matched via `path`,
/// most significant first:
///
/// | bits  | field |
/// |-------|-------|
/// | 63–61 | number of non-empty fields among methods, hosts, headers, snis, paths: the more a route pins down, the more specific it is |
/// | 60    | `hosts` present without wildcards: an exact host beats a pattern |
/// | 59–52 | number of header names (capped at 255) |
/// | 51    | the path is a regex: a regex states intent more precisely than a prefix, so it outranks even an exact prefix hit |
/// | 50–19 | `regex_priority`, for regex paths only |
/// | 18–0  | prefix length: the longest prefix wins |
///
/// Kong shifts `regex_priority` as a raw integer, so a negative value
/// corrupts the higher fields there; here it is clamped to `i32` and offset
/// by 2³¹, which keeps negative priorities below zero without overflowing.
pub(super) fn priority(route: &Route, path: Option<&str>) -> u64 {
    let header_count = route
        .headers
        .as_ref()
        .map_or(0, |headers| headers.len() as u64);
    let present = [
        non_empty(&route.methods),
        non_empty(&route.hosts),
        header_count > 0,
        non_empty(&route.snis),
        path.is_some(),
    ];
    let match_weight = present.iter().filter(|&&is_present| is_present).count() as u64;
    // Kong tests `type(hosts) == "table"`, so an empty list still counts.
    let plain_hosts = route
        .hosts
        .as_ref()
        .is_some_and(|hosts| hosts.iter().all(|h| !h.contains('*')));
    let is_regex = path.is_some_and(|p| p.starts_with('~'));
    let prefix_length = match path {
        Some(p) if !is_regex => (p.len() as u64).min(MAX_PREFIX_LENGTH),
        _ => 0,
    };
    let regex_priority = if is_regex {
        encode_regex_priority(route.regex_priority)
    } else {
        0
    };

    (match_weight << MATCH_WEIGHT_SHIFT)
        | if plain_hosts { PLAIN_HOSTS_BIT } else { 0 }
        | (header_count.min(MAX_HEADER_COUNT) << HEADER_COUNT_SHIFT)
        | if is_regex { REGEX_BIT } else { 0 }
        | (regex_priority << REGEX_PRIORITY_SHIFT)
        | prefix_length
}

fn non_empty(field: &Option<Vec<String>>) -> bool {
    field.as_ref().is_some_and(|values| !values.is_empty())
}

/// Maps `regex_priority` onto 32 unsigned bits, preserving order.
fn encode_regex_priority(regex_priority: i64) -> u64 {
    let clamped = regex_priority.clamp(i64::from(i32::MIN), i64::from(i32::MAX));
    (clamped - i64::from(i32::MIN)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        let exact = HostPattern::parse("Example.COM");
        assert!(exact.matches("example.com", 80));
        assert!(exact.matches("example.com", 1234));
        assert!(!exact.matches("www.example.com", 80));

        let suffix = HostPattern::parse("*.example.com");
        assert!(suffix.matches("a.example.com", 80));
        assert!(suffix.matches("a.b.example.com", 80));
        assert!(!suffix.matches("example.com", 80));

        let prefix = HostPattern::parse("example.*");
        assert!(prefix.matches("example.org", 80));
        assert!(prefix.matches("example.co.uk", 80));
        assert!(!prefix.matches("www.example.org", 80));

        let with_port = HostPattern::parse("example.com:8000");
        assert!(with_port.matches("example.com", 8000));
        assert!(!with_port.matches("example.com", 8001));
    }

    #[test]
    fn regex_priority_encoding_preserves_order() {
        let values = [i64::MIN, -1_000_000, -1, 0, 1, 1_000_000, i64::MAX];
        let encoded: Vec<u64> = values.iter().map(|&v| encode_regex_priority(v)).collect();
        assert!(encoded.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(encoded.iter().all(|&e| e <= u64::from(u32::MAX)));
    }

    #[test]
    fn literal_prefix_of_regex_paths() {
        let cases = [
            (r"/users/\d+", "/users/"),
            (r"/re-12/(\d+)$", "/re-12/"),
            ("/items/(?<id>[0-9]+)", "/items/"),
            ("/abc?", "/ab"),
            ("/abc*/x", "/ab"),
            ("/abc{0,2}", "/ab"),
            ("/abc+", "/abc"),
            (r"/a\.b", "/a"),
            ("/a|/b", ""),
            ("/(a|b)", ""),
            ("(?i)/abc", ""),
            (".*", ""),
            ("/é", "/"),
        ];
        for (pattern, expected) in cases {
            assert_eq!(literal_prefix(pattern), expected, "{pattern}");
        }
    }

    #[test]
    fn wildcard_snis_match_like_kongs_router() {
        let suffix = SniPattern::parse("*.Foo.test");
        assert!(suffix.matches("a.foo.test"));
        assert!(suffix.matches("a.b.foo.test"));
        assert!(!suffix.matches("foo.test"));
        let prefix = SniPattern::parse("bar.*");
        assert!(prefix.matches("bar.test"));
        assert!(prefix.matches("bar.example.com"));
        assert!(!prefix.matches("foobar.test"));
        assert_eq!(
            SniPattern::parse("Example.com."),
            SniPattern::Exact("example.com".to_owned())
        );
    }

    #[test]
    fn sni_is_canonicalized() {
        assert_eq!(canonical_sni("Example.com."), "example.com");
        assert_eq!(canonical_sni("."), ".");
    }
}
