//! A canonical configuration written back as a decK `_format_version: "3.0"`
//! document, nested the way people write one:
//!
//! - routes and service-scoped plugins under their service, route-scoped
//!   plugins under their route;
//! - consumer-scoped plugins and `keyauth_credentials` under their consumer;
//! - plugins with several scopes, and global ones, at the top level with
//!   their references written as names (ids for nameless entities).
//!
//! Ids are left out where a name identifies the entity (service and route
//! `name`, consumer `username`, plugin scope, credential `key`), except for
//! consumers that a plugin's `anonymous` setting names by id, so that the
//! document syncs back to the same configuration. Timestamps are left out,
//! and so are default values unless asked for. Entities are sorted by
//! name, so the same state always gives the same document.

use std::collections::{HashMap, HashSet};

use schemas::config::{id_of, reference_of, Config};
use schemas::EntityKind;
use serde_json::{json, Map, Value};

use crate::names::{plugin_scopes, Names};
use crate::secrets::Sanitizer;
use crate::state::strip_nulls;

/// What to write.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Keep every id (`--with-id`).
    pub with_id: bool,
    /// Keep fields that hold their default value (`--with-defaults`).
    pub with_defaults: bool,
    /// Replace secrets with sanitized markers (`--sanitize`).
    pub sanitize: bool,
    /// Written as `_info.select_tags`.
    pub select_tags: Vec<String>,
}

/// The decK document for `config`.
pub fn document(config: &Config, options: &ExportOptions) -> Value {
    Exporter::new(config, options).document()
}

/// Where a plugin is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Parent<'a> {
    Service(&'a str),
    Route(&'a str),
    Consumer(&'a str),
}

struct Exporter<'a> {
    config: &'a Config,
    options: &'a ExportOptions,
    names: Names,
    sanitizer: Option<Sanitizer>,
    /// Consumers named by id in a plugin's `anonymous`: their id is kept.
    anonymous_ids: HashSet<&'a str>,
    /// Ids present, per kind: nesting needs the parent in the document.
    present: HashSet<(EntityKind, &'a str)>,
}

impl<'a> Exporter<'a> {
    fn new(config: &'a Config, options: &'a ExportOptions) -> Self {
        let anonymous_ids = config
            .plugins
            .iter()
            .filter_map(|plugin| plugin.get("config")?.get("anonymous")?.as_str())
            .collect();
        let present = EntityKind::ALL
            .into_iter()
            .flat_map(|kind| {
                config
                    .entities(kind)
                    .iter()
                    .filter_map(move |e| Some((kind, id_of(e)?)))
            })
            .collect();
        Self {
            config,
            options,
            names: Names::of_values(config),
            sanitizer: options.sanitize.then(Sanitizer::new),
            anonymous_ids,
            present,
        }
    }

    fn document(&self) -> Value {
        let mut plugins_by_parent: HashMap<Parent<'a>, Vec<&'a Value>> = HashMap::new();
        let mut top_plugins = Vec::new();
        for plugin in &self.config.plugins {
            match self.single_parent(plugin) {
                Some(parent) => plugins_by_parent.entry(parent).or_default().push(plugin),
                None => top_plugins.push(plugin),
            }
        }
        let (routes_by_service, top_routes) =
            self.group(EntityKind::Route, "service", EntityKind::Service);
        let (credentials_by_consumer, top_credentials) = self.group(
            EntityKind::KeyAuthCredential,
            "consumer",
            EntityKind::Consumer,
        );
        let nested = Nested {
            plugins: &plugins_by_parent,
            routes: &routes_by_service,
            credentials: &credentials_by_consumer,
        };
        let mut doc = Map::new();
        doc.insert("_format_version".into(), json!("3.0"));
        if !self.options.select_tags.is_empty() {
            doc.insert(
                "_info".into(),
                json!({"select_tags": self.options.select_tags}),
            );
        }
        let services = self.sorted(EntityKind::Service, self.config.services.iter().collect());
        let services = services.iter().map(|s| self.service(s, &nested)).collect();
        let routes = self.sorted(EntityKind::Route, top_routes);
        let routes = routes
            .iter()
            .map(|r| self.route(r, &nested, false))
            .collect();
        let consumers = self.sorted(EntityKind::Consumer, self.config.consumers.iter().collect());
        let consumers = consumers
            .iter()
            .map(|c| self.consumer(c, &nested))
            .collect();
        let plugins = self.sorted(EntityKind::Plugin, top_plugins);
        let plugins = plugins.iter().map(|p| self.top_plugin(p)).collect();
        let credentials = self.sorted(EntityKind::KeyAuthCredential, top_credentials);
        let credentials = credentials
            .iter()
            .map(|c| self.with_name_refs(EntityKind::KeyAuthCredential, c))
            .collect();
        for (key, list) in [
            ("services", services),
            ("routes", routes),
            ("consumers", consumers),
            ("plugins", plugins),
            ("keyauth_credentials", credentials),
        ] {
            insert_list(&mut doc, key, list);
        }
        Value::Object(doc)
    }

    /// The one parent a single-scope plugin is nested under.
    fn single_parent(&self, plugin: &'a Value) -> Option<Parent<'a>> {
        let scopes: Vec<(EntityKind, &'a str)> = plugin_scopes()
            .filter_map(|(field, kind)| Some((kind, reference_of(plugin, field)?)))
            .collect();
        let [(kind, id)] = scopes.as_slice() else {
            return None;
        };
        if !self.present.contains(&(*kind, *id)) {
            return None;
        }
        match kind {
            EntityKind::Service => Some(Parent::Service(id)),
            EntityKind::Route => Some(Parent::Route(id)),
            _ => Some(Parent::Consumer(id)),
        }
    }

    /// Entities of `kind` by the parent they are nested under, and those
    /// without a parent in the document.
    fn group(
        &self,
        kind: EntityKind,
        field: &str,
        parent: EntityKind,
    ) -> (HashMap<&'a str, Vec<&'a Value>>, Vec<&'a Value>) {
        let mut nested: HashMap<&'a str, Vec<&'a Value>> = HashMap::new();
        let mut top = Vec::new();
        for entity in self.config.entities(kind) {
            match reference_of(entity, field).filter(|id| self.present.contains(&(parent, *id))) {
                Some(parent_id) => nested.entry(parent_id).or_default().push(entity),
                None => top.push(entity),
            }
        }
        (nested, top)
    }

    fn service(&self, service: &'a Value, nested: &Nested<'_, 'a>) -> Value {
        let mut body = self.body(EntityKind::Service, service, &[]);
        let id = id_of(service).unwrap_or_default();
        let routes = nested.routes.get(id).cloned().unwrap_or_default();
        let routes = self.sorted(EntityKind::Route, routes);
        let routes = routes.iter().map(|r| self.route(r, nested, true)).collect();
        insert_list(&mut body, "routes", routes);
        insert_list(
            &mut body,
            "plugins",
            self.nested_plugins(nested, Parent::Service(id), "service"),
        );
        Value::Object(body)
    }

    fn route(&self, route: &'a Value, nested: &Nested<'_, 'a>, under_service: bool) -> Value {
        let mut body = if under_service {
            self.body(EntityKind::Route, route, &["service"])
        } else {
            self.route_with_service_ref(route)
        };
        let id = id_of(route).unwrap_or_default();
        insert_list(
            &mut body,
            "plugins",
            self.nested_plugins(nested, Parent::Route(id), "route"),
        );
        Value::Object(body)
    }

    /// A top-level route refers to its service as `{name: x}` or `{id: x}`.
    fn route_with_service_ref(&self, route: &Value) -> Map<String, Value> {
        let mut body = self.body(EntityKind::Route, route, &["service"]);
        if let Some(service) = reference_of(route, "service") {
            let reference = match self.names.name_of(EntityKind::Service, service) {
                Some(name) => json!({"name": name}),
                None => json!({"id": service}),
            };
            body.insert("service".into(), reference);
        }
        body
    }

    fn consumer(&self, consumer: &'a Value, nested: &Nested<'_, 'a>) -> Value {
        let mut body = self.body(EntityKind::Consumer, consumer, &[]);
        let id = id_of(consumer).unwrap_or_default();
        insert_list(
            &mut body,
            "plugins",
            self.nested_plugins(nested, Parent::Consumer(id), "consumer"),
        );
        let credentials = nested.credentials.get(id).cloned().unwrap_or_default();
        let credentials = self.sorted(EntityKind::KeyAuthCredential, credentials);
        let credentials = credentials
            .iter()
            .map(|c| Value::Object(self.body(EntityKind::KeyAuthCredential, c, &["consumer"])))
            .collect();
        insert_list(&mut body, "keyauth_credentials", credentials);
        Value::Object(body)
    }

    fn nested_plugins(
        &self,
        nested: &Nested<'_, 'a>,
        parent: Parent<'_>,
        field: &str,
    ) -> Vec<Value> {
        let plugins = nested.plugins.get(&parent).cloned().unwrap_or_default();
        self.sorted(EntityKind::Plugin, plugins)
            .iter()
            .map(|plugin| Value::Object(self.body(EntityKind::Plugin, plugin, &[field])))
            .collect()
    }

    fn top_plugin(&self, plugin: &Value) -> Value {
        self.with_name_refs(EntityKind::Plugin, plugin)
    }

    /// A top-level entity with its references written as names.
    fn with_name_refs(&self, kind: EntityKind, entity: &Value) -> Value {
        let mut body = self.body(kind, entity, &[]);
        for reference in kind.descriptor().references {
            if let Some(id) = reference_of(entity, reference.field) {
                let name = self.names.name_or_id(reference.parent, id);
                body.insert(reference.field.to_owned(), Value::String(name));
            }
        }
        Value::Object(order_fields(kind, body))
    }

    /// The entity's own fields as written in the document: secrets
    /// sanitized if asked, defaults, timestamps and (mostly) ids left out,
    /// `drop` fields (the reference to the nesting parent) removed.
    fn body(&self, kind: EntityKind, entity: &Value, drop: &[&str]) -> Map<String, Value> {
        let mut entity = entity.clone();
        if let Some(sanitizer) = &self.sanitizer {
            sanitizer.sanitize(kind, &mut entity);
        }
        let keep_id = self.keep_id(kind, &entity);
        let written = match (self.options.with_defaults, kind.record_for(&entity)) {
            (false, Some(record)) => record.strip_defaults(&entity),
            _ => strip_nulls(entity),
        };
        let Value::Object(mut fields) = written else {
            return Map::new();
        };
        for field in ["created_at", "updated_at"].iter().chain(drop) {
            fields.shift_remove(*field);
        }
        if !keep_id {
            fields.shift_remove("id");
        }
        order_fields(kind, fields)
    }

    fn keep_id(&self, kind: EntityKind, entity: &Value) -> bool {
        if self.options.with_id {
            return true;
        }
        // An entity is matched by its endpoint key (name, username, key)
        // when it has one; plugins are matched by their scope. A consumer
        // that key-auth names as `anonymous` is named by its id.
        let id = id_of(entity).unwrap_or_default();
        let unnamed = entity
            .get(kind.descriptor().endpoint_key)
            .is_none_or(Value::is_null);
        match kind {
            EntityKind::Plugin => false,
            EntityKind::Consumer => unnamed || self.anonymous_ids.contains(id),
            _ => unnamed,
        }
    }

    /// Entities in a stable order: by name (plugins by name and scope
    /// names), then id.
    fn sorted(&self, kind: EntityKind, mut entities: Vec<&'a Value>) -> Vec<&'a Value> {
        entities.sort_by_cached_key(|entity| self.sort_key(kind, entity));
        entities
    }

    fn sort_key(&self, kind: EntityKind, entity: &Value) -> Vec<String> {
        let text = |field: &str| {
            entity
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let mut key = match kind {
            EntityKind::Plugin => {
                let mut key = vec![text("name")];
                key.extend(plugin_scopes().map(|(field, target)| {
                    reference_of(entity, field)
                        .map(|id| self.names.name_or_id(target, id))
                        .unwrap_or_default()
                }));
                key
            }
            other => other
                .descriptor()
                .unique
                .iter()
                .map(|field| text(field))
                .collect(),
        };
        key.push(text("id"));
        key
    }
}

/// The nesting indexes, by parent id.
struct Nested<'m, 'a> {
    plugins: &'m HashMap<Parent<'a>, Vec<&'a Value>>,
    routes: &'m HashMap<&'a str, Vec<&'a Value>>,
    credentials: &'m HashMap<&'a str, Vec<&'a Value>>,
}

/// Identifying fields first, then the rest in schema order.
fn order_fields(kind: EntityKind, fields: Map<String, Value>) -> Map<String, Value> {
    let lead: Vec<&str> = match kind {
        EntityKind::Plugin => {
            let scopes = plugin_scopes().map(|(field, _)| field);
            ["name", "instance_name", "id"]
                .into_iter()
                .chain(scopes)
                .collect()
        }
        other => other
            .descriptor()
            .unique
            .iter()
            .copied()
            .chain(["id"])
            .collect(),
    };
    let mut rest = fields;
    let mut ordered = Map::new();
    for key in lead {
        if let Some(value) = rest.shift_remove(key) {
            ordered.insert(key.to_owned(), value);
        }
    }
    ordered.extend(rest);
    ordered
}

fn insert_list(map: &mut Map<String, Value>, key: &str, list: Vec<Value>) {
    if !list.is_empty() {
        map.insert(key.to_owned(), Value::Array(list));
    }
}

#[cfg(test)]
mod tests;
