//! Route matching as Kong 3.x does it with `router_flavor =
//! traditional_compatible`, and construction of the upstream path.
//!
//! [`Router::build`] compiles the routes once per configuration change: every
//! route path becomes its own matcher carrying Kong's 64-bit priority, the
//! matchers are sorted by (priority, route id) descending, and an index by
//! exact host and path prefix (a regex's leading literal text counts as its
//! prefix) keeps lookups from touching routes that cannot match. [`Router::find`] normalizes the request path ([`normalize_path`])
//! and returns the first matcher, in rank order, whose every condition holds.
//!
//! Matching rules (all present fields must match; any value within a field):
//! - paths: `/foo` is a plain character prefix; `~/re` is a regex anchored
//!   at the start only (`^` is prepended);
//! - hosts: exact, `*.suffix` or `prefix.*`, case-insensitive; a route host
//!   without a port matches any port, `host:port` needs that port;
//! - methods: exact; headers: names and values case-insensitive, `~*re`
//!   values are case-insensitive regexes; snis: only checked over TLS.
//!
//! Paths, header values and hosts are compiled by [`schemas::matching`], with
//! which the route schema also validates them, so a route the Admin API
//! accepted always compiles (the regex errors of [`RouterError`] can only
//! come from a route stored before the schema checked its regexes).
//!
//! Protocols are not a matching condition, as in Kong: an `https`-only route
//! also matches a plain request, which is then flagged with
//! [`RouteMatch::needs_https`] so the proxy can answer 426 or redirect.
//!
//! [`upstream_path`] and [`forwarded_prefix`] turn a match into what is sent
//! upstream.

mod index;
mod matcher;
mod path;
mod uri;

#[cfg(test)]
mod schema_agreement;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use schemas::model::{Route, Service};
use uuid::Uuid;

use index::{Rank, RouteIndex};
use matcher::{is_http_subsystem_route, Hit, Matcher, PreparedRequest};

pub use path::normalize_path;
pub use uri::{forwarded_prefix, upstream_path};

/// What the router needs to know about a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    pub method: &'a str,
    /// The Host header (or HTTP/2 authority), with its optional `:port`.
    pub host: &'a str,
    /// The listener port, used when `host` carries no port.
    pub port: u16,
    /// The raw request path, without the query string.
    pub path: &'a str,
    pub headers: &'a http::HeaderMap,
    /// The request is HTTPS: it came over TLS (or a trusted proxy says so).
    pub tls: bool,
    /// The TLS server name the client sent, if any.
    pub sni: Option<&'a str>,
}

/// Groups captured by a regex path, for plugins (Kong's `uri_captures`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UriCaptures {
    /// Named groups that took part in the match.
    pub named: BTreeMap<String, String>,
    /// Every group by position, starting with group 1 (named groups
    /// included, as Kong numbers them too); a group that did not take part
    /// in the match is `""`.
    pub unnamed: Vec<String>,
}

/// The route selected for a request.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    pub route: Arc<Route>,
    pub service_id: Option<Uuid>,
    /// The part of the path that matched: the route's prefix, or the whole
    /// regex match. `None` when the route has no paths.
    pub matched_prefix: Option<String>,
    /// The request path after [`normalize_path`].
    pub normalized_path: String,
    /// Regex groups (empty for prefix and pathless routes).
    pub captures: UriCaptures,
    /// The route only allows `https` but the request is plain HTTP: the proxy
    /// must answer 426, or redirect with `https_redirect_status_code`.
    pub needs_https: bool,
}

/// Why a configuration cannot be compiled into a router.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("route {route_id}: invalid regex path {path:?}: {source}")]
    InvalidPathRegex {
        route_id: Uuid,
        path: String,
        source: regex::Error,
    },
    #[error("route {route_id}: invalid regex value for header {header:?}: {source}")]
    InvalidHeaderRegex {
        route_id: Uuid,
        header: String,
        source: regex::Error,
    },
    #[error("route {route_id}: service {service_id} does not exist")]
    MissingService { route_id: Uuid, service_id: Uuid },
}

/// The compiled routing table. Immutable; rebuild it when routes change.
#[derive(Debug, Default)]
pub struct Router {
    /// Sorted by rank: priority, then route id, descending.
    matchers: Vec<Matcher>,
    index: RouteIndex,
}

impl Router {
    /// Compiles `routes`, leaving out stream routes and routes whose service
    /// is disabled. Fails on a regex that does not compile or a route whose
    /// service is not in `services`.
    pub fn build(
        routes: &[Arc<Route>],
        services: &HashMap<Uuid, Arc<Service>>,
    ) -> Result<Router, RouterError> {
        let mut matchers = Vec::new();
        for route in routes {
            if is_routable(route, services)? {
                let service_id = route.service.map(|service| service.id);
                matchers.extend(Matcher::compile_route(route, service_id)?);
            }
        }
        matchers.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| b.route.id.cmp(&a.route.id))
                .then_with(|| a.path_position.cmp(&b.path_position))
        });
        let index = RouteIndex::build(&matchers);
        Ok(Router { matchers, index })
    }

    /// The route for a request, or `None` (Kong's 404 "no Route matched").
    ///
    /// The highest-priority matcher wins; on equal priority a route whose
    /// matching host names the request's port beats a port-less one, and
    /// then the higher route id wins (atc-router's order).
    pub fn find(&self, info: &RequestInfo<'_>) -> Option<RouteMatch> {
        let request = PreparedRequest::new(info);
        let mut scratch = Vec::new();
        let mut candidates = self
            .index
            .candidates(&request.host, &request.path, &mut scratch);
        let (rank, hit) = candidates
            .by_ref()
            .find_map(|rank| self.try_rank(rank, &request))?;
        let (rank, hit) = if hit.port_specific_host {
            (rank, hit)
        } else {
            self.port_specific_peer(rank, candidates, &request)
                .unwrap_or((rank, hit))
        };
        let matcher = self.matcher(rank)?;
        Some(route_match(matcher, hit, request))
    }

    fn matcher(&self, rank: Rank) -> Option<&Matcher> {
        self.matchers.get(usize::try_from(rank).ok()?)
    }

    fn try_rank(&self, rank: Rank, request: &PreparedRequest<'_>) -> Option<(Rank, Hit)> {
        let hit = self.matcher(rank)?.try_match(request)?;
        Some((rank, hit))
    }

    /// Among the candidates ranked right after `winner` with the same
    /// priority, the first one that matches through a port-specific host.
    fn port_specific_peer(
        &self,
        winner: Rank,
        rest: impl Iterator<Item = Rank>,
        request: &PreparedRequest<'_>,
    ) -> Option<(Rank, Hit)> {
        let priority = self.matcher(winner)?.priority;
        rest.take_while(|&rank| self.matcher(rank).is_some_and(|m| m.priority == priority))
            .filter(|&rank| self.matcher(rank).is_some_and(|m| m.has_port_specific_host))
            .find_map(|rank| {
                self.try_rank(rank, request)
                    .filter(|(_, hit)| hit.port_specific_host)
            })
    }
}

/// Whether `route` belongs in the HTTP router: it must use an HTTP-family
/// protocol, and its service (if any) must exist and be enabled.
fn is_routable(route: &Route, services: &HashMap<Uuid, Arc<Service>>) -> Result<bool, RouterError> {
    if !is_http_subsystem_route(route) {
        return Ok(false);
    }
    let Some(service) = route.service else {
        return Ok(true);
    };
    let service = services
        .get(&service.id)
        .ok_or(RouterError::MissingService {
            route_id: route.id,
            service_id: service.id,
        })?;
    Ok(service.enabled)
}

fn route_match(matcher: &Matcher, hit: Hit, request: PreparedRequest<'_>) -> RouteMatch {
    let (matched_prefix, captures) = match hit.path {
        Some(path) => (Some(path.matched), path.captures),
        None => (None, UriCaptures::default()),
    };
    RouteMatch {
        route: Arc::clone(&matcher.route),
        service_id: matcher.service_id,
        matched_prefix,
        normalized_path: request.path,
        captures,
        needs_https: matcher.https_only && !request.tls,
    }
}
