//! URL dispatch: which Admin API endpoint a path names, and which methods
//! it answers.
//!
//! Paths are split on `/` and each segment percent-decoded, so
//! `/services/caf%C3%A9` names the service `café`. A trailing slash is
//! ignored, as Kong's router does.

use http::Method;
use percent_encoding::percent_decode_str;
use schemas::EntityKind;

/// A parent → child relation reachable by a nested URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relation {
    pub parent: EntityKind,
    /// The URL segment after the parent, e.g. `routes` or `key-auth`.
    pub segment: &'static str,
    pub child: EntityKind,
    /// The child's reference field, e.g. `service`.
    pub field: &'static str,
}

/// Every nested collection, one per reference between kinds (see each
/// kind's descriptor): `/services/{s}/routes`, `/consumers/{c}/key-auth`,
/// ...
pub fn relations() -> impl Iterator<Item = Relation> {
    schemas::entities::descriptor::all_references().map(|(child, reference)| Relation {
        parent: reference.parent,
        segment: child.descriptor().nested_path,
        child,
        field: reference.field,
    })
}

/// The reference fields of `kind` and the kind each points at.
pub fn reference_fields(kind: EntityKind) -> impl Iterator<Item = Relation> {
    relations().filter(move |relation| relation.child == kind)
}

/// One Admin API endpoint, with the keys its URL carries (decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /`
    Root,
    /// `GET /status`
    Status,
    /// `GET /metrics`
    Metrics,
    /// `GET|POST /config`
    Config,
    /// `GET /plugins/enabled`
    PluginsEnabled,
    /// `GET /schemas/{entity}`
    EntitySchema(String),
    /// `POST /schemas/{entity}/validate` (also `/schemas/plugins/validate`)
    ValidateEntity(String),
    /// `GET /schemas/plugins/{name}`
    PluginSchema(String),
    /// `/services`, `/key-auths`, ...
    Collection(EntityKind),
    /// `/services/{id or name}`
    Entity(EntityKind, String),
    /// `/services/{s}/routes`
    Nested(Relation, String),
    /// `/services/{s}/routes/{r}`
    NestedEntity(Relation, String, String),
    /// `/routes/{r}/service`: the entity a reference points at.
    Foreign(Relation, String),
    /// `GET /tags` (`None`) and `GET /tags/{tag}`.
    Tags(Option<String>),
    /// `/tags/{tag}` whose tag is not UTF-8 (400).
    InvalidTag,
    /// `GET /endpoints`
    Endpoints,
}

impl Endpoint {
    /// The methods this endpoint answers (HEAD is answered as GET).
    pub fn allows(&self, method: &Method) -> bool {
        let allowed: &[Method] = match self {
            Self::Root
            | Self::Status
            | Self::Metrics
            | Self::PluginsEnabled
            | Self::EntitySchema(_)
            | Self::PluginSchema(_)
            | Self::Tags(_)
            | Self::InvalidTag
            | Self::Endpoints => &[Method::GET],
            Self::ValidateEntity(_) => &[Method::POST],
            Self::Config | Self::Collection(_) | Self::Nested(..) => &[Method::GET, Method::POST],
            Self::Entity(..) | Self::NestedEntity(..) | Self::Foreign(..) => {
                &[Method::GET, Method::PUT, Method::PATCH, Method::DELETE]
            }
        };
        allowed.contains(method)
    }

    /// The `Allow` header value for this endpoint: its methods sorted, as
    /// Kong's `attach_routes` lists them.
    pub fn allow_header(&self) -> &'static str {
        match self {
            Self::Root
            | Self::Status
            | Self::Metrics
            | Self::PluginsEnabled
            | Self::EntitySchema(_)
            | Self::PluginSchema(_)
            | Self::Tags(_)
            | Self::InvalidTag
            | Self::Endpoints => "GET, HEAD, OPTIONS",
            Self::ValidateEntity(_) => "OPTIONS, POST",
            Self::Config | Self::Collection(_) | Self::Nested(..) => "GET, HEAD, OPTIONS, POST",
            Self::Entity(..) | Self::NestedEntity(..) | Self::Foreign(..) => {
                "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"
            }
        }
    }

    /// A path template without keys, safe to log (keys may be secrets).
    pub fn template(&self) -> String {
        match self {
            Self::Root => "/".to_owned(),
            Self::Status => "/status".to_owned(),
            Self::Metrics => "/metrics".to_owned(),
            Self::Config => "/config".to_owned(),
            Self::PluginsEnabled => "/plugins/enabled".to_owned(),
            Self::EntitySchema(_) => "/schemas/{entity}".to_owned(),
            Self::ValidateEntity(_) => "/schemas/{entity}/validate".to_owned(),
            Self::PluginSchema(_) => "/schemas/plugins/{name}".to_owned(),
            Self::Tags(None) => "/tags".to_owned(),
            Self::Tags(Some(_)) | Self::InvalidTag => "/tags/{tag}".to_owned(),
            Self::Endpoints => "/endpoints".to_owned(),
            Self::Collection(kind) => format!("/{}", kind.admin_path()),
            Self::Entity(kind, _) => format!("/{}/{{key}}", kind.admin_path()),
            Self::Nested(relation, _) => {
                format!(
                    "/{}/{{key}}/{}",
                    relation.parent.admin_path(),
                    relation.segment
                )
            }
            Self::NestedEntity(relation, _, _) => {
                format!(
                    "/{}/{{key}}/{}/{{key}}",
                    relation.parent.admin_path(),
                    relation.segment
                )
            }
            Self::Foreign(relation, _) => {
                format!(
                    "/{}/{{key}}/{}",
                    relation.child.admin_path(),
                    relation.field
                )
            }
        }
    }
}

/// The kind whose Admin API collection is `segment` (`key-auths`, ...).
fn collection(segment: &str) -> Option<EntityKind> {
    EntityKind::ALL
        .into_iter()
        .find(|kind| kind.admin_path() == segment)
}

/// Split and percent-decode a path; `None` if a segment is not UTF-8.
fn segments(path: &str) -> Option<Vec<String>> {
    let trimmed = path.trim_start_matches('/').trim_end_matches('/');
    if trimmed.is_empty() {
        return Some(Vec::new());
    }
    trimmed
        .split('/')
        .map(|raw| {
            percent_decode_str(raw)
                .decode_utf8()
                .ok()
                .map(|text| text.into_owned())
        })
        .collect()
}

/// The endpoint a request path names, if any.
pub fn parse(path: &str) -> Option<Endpoint> {
    let Some(segments) = segments(path) else {
        // Kong answers a tag that is not UTF-8 with 400, not 404.
        let tag = path.trim_matches('/').strip_prefix("tags/")?;
        return (!tag.contains('/')).then_some(Endpoint::InvalidTag);
    };
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    match parts.as_slice() {
        [] => Some(Endpoint::Root),
        ["status"] => Some(Endpoint::Status),
        ["metrics"] => Some(Endpoint::Metrics),
        ["config"] => Some(Endpoint::Config),
        ["plugins", "enabled"] => Some(Endpoint::PluginsEnabled),
        ["tags"] => Some(Endpoint::Tags(None)),
        ["tags", tag] => Some(Endpoint::Tags(Some((*tag).to_owned()))),
        ["endpoints"] => Some(Endpoint::Endpoints),
        ["schemas", "plugins", "validate"] => Some(Endpoint::ValidateEntity("plugins".to_owned())),
        ["schemas", "plugins", name] => Some(Endpoint::PluginSchema((*name).to_owned())),
        ["schemas", entity] => Some(Endpoint::EntitySchema((*entity).to_owned())),
        ["schemas", entity, "validate"] => Some(Endpoint::ValidateEntity((*entity).to_owned())),
        _ => parse_entity_path(&parts),
    }
}

fn parse_entity_path(parts: &[&str]) -> Option<Endpoint> {
    let (first, rest) = parts.split_first()?;
    let kind = collection(first)?;
    match rest {
        [] => Some(Endpoint::Collection(kind)),
        [key] => Some(Endpoint::Entity(kind, (*key).to_owned())),
        [key, segment] => nested_or_foreign(kind, key, segment),
        [key, segment, child_key] => {
            let relation = nested_relation(kind, segment)?;
            Some(Endpoint::NestedEntity(
                relation,
                (*key).to_owned(),
                (*child_key).to_owned(),
            ))
        }
        _ => None,
    }
}

fn nested_or_foreign(kind: EntityKind, key: &str, segment: &str) -> Option<Endpoint> {
    if let Some(relation) = nested_relation(kind, segment) {
        return Some(Endpoint::Nested(relation, key.to_owned()));
    }
    let relation = reference_fields(kind).find(|relation| relation.field == segment)?;
    Some(Endpoint::Foreign(relation, key.to_owned()))
}

fn nested_relation(parent: EntityKind, segment: &str) -> Option<Relation> {
    relations().find(|relation| relation.parent == parent && relation.segment == segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_paths() {
        assert_eq!(parse("/"), Some(Endpoint::Root));
        assert_eq!(parse(""), Some(Endpoint::Root));
        assert_eq!(parse("/status"), Some(Endpoint::Status));
        assert_eq!(parse("/metrics"), Some(Endpoint::Metrics));
        assert_eq!(
            parse("/services/"),
            Some(Endpoint::Collection(EntityKind::Service))
        );
        assert_eq!(
            parse("/key-auths"),
            Some(Endpoint::Collection(EntityKind::KeyAuthCredential))
        );
        assert_eq!(parse("/keyauth_credentials"), None);
        assert_eq!(parse("/upstreams"), None);
        assert_eq!(parse("/plugins/enabled"), Some(Endpoint::PluginsEnabled));
    }

    #[test]
    fn entity_keys_are_decoded() {
        assert_eq!(
            parse("/services/caf%C3%A9"),
            Some(Endpoint::Entity(EntityKind::Service, "café".to_owned()))
        );
        assert_eq!(parse("/services/%FF"), None);
        assert_eq!(parse("/tags/%FF"), Some(Endpoint::InvalidTag));
        assert_eq!(
            parse("/tags/corp_%20a"),
            Some(Endpoint::Tags(Some("corp_ a".to_owned())))
        );
    }

    #[test]
    fn nested_and_foreign_paths() {
        let Some(Endpoint::Nested(relation, key)) = parse("/consumers/bob/key-auth") else {
            panic!("nested key-auth");
        };
        assert_eq!(
            (relation.child, key.as_str()),
            (EntityKind::KeyAuthCredential, "bob")
        );
        let Some(Endpoint::NestedEntity(relation, parent, child)) = parse("/services/s/routes/r")
        else {
            panic!("nested route");
        };
        assert_eq!(
            (relation.field, parent.as_str(), child.as_str()),
            ("service", "s", "r")
        );
        let Some(Endpoint::Foreign(relation, key)) = parse("/key-auths/k/consumer") else {
            panic!("foreign consumer");
        };
        assert_eq!((relation.parent, key.as_str()), (EntityKind::Consumer, "k"));
        assert!(matches!(
            parse("/routes/r/service"),
            Some(Endpoint::Foreign(..))
        ));
        assert_eq!(parse("/routes/r/routes"), None);
        assert_eq!(parse("/services/s/routes/r/extra"), None);
    }

    #[test]
    fn schema_paths() {
        assert_eq!(
            parse("/schemas/services"),
            Some(Endpoint::EntitySchema("services".into()))
        );
        assert_eq!(
            parse("/schemas/plugins/session"),
            Some(Endpoint::PluginSchema("session".into()))
        );
        assert_eq!(
            parse("/schemas/plugins/validate"),
            Some(Endpoint::ValidateEntity("plugins".into()))
        );
        assert_eq!(
            parse("/schemas/routes/validate"),
            Some(Endpoint::ValidateEntity("routes".into()))
        );
    }

    #[test]
    fn methods_per_endpoint() {
        assert!(Endpoint::Collection(EntityKind::Service).allows(&Method::POST));
        assert!(!Endpoint::Collection(EntityKind::Service).allows(&Method::DELETE));
        assert!(Endpoint::Entity(EntityKind::Service, "x".into()).allows(&Method::PATCH));
        assert!(!Endpoint::Entity(EntityKind::Service, "x".into()).allows(&Method::POST));
        assert!(!Endpoint::Root.allows(&Method::POST));
    }
}
