//! The plugin runner: resolves which instance of each plugin applies to a
//! request, runs the access phase and, later, the response phase; hands
//! the instances with a log phase over to the response body's completion
//! ([`PluginRunner::into_log_phase`]).
//!
//! Resolution follows Kong's `plugins_iterator`: for each plugin name, in
//! run order (priority descending, then name descending), the most specific
//! instance for (route, service, consumer) wins:
//!
//! | rank | scope                     |
//! |------|---------------------------|
//! | 1    | route + service + consumer |
//! | 2    | route + consumer          |
//! | 3    | service + consumer        |
//! | 4    | route + service           |
//! | 5    | consumer                  |
//! | 6    | route                     |
//! | 7    | service                   |
//! | 8    | global                    |
//!
//! The consumer is the one authenticated *when the name is reached*, so a
//! consumer-scoped instance of a low-priority plugin (request-termination)
//! sees the consumer that key-auth or session authenticated before it. Only
//! instances whose `protocols` include the request's protocol are
//! candidates.

use std::sync::Arc;

use http::header::{HeaderMap, HeaderValue, CONNECTION};
use http::{StatusCode, Version};
use uuid::Uuid;

use crate::pdk::body;
use crate::pdk::{Flow, LogEntry, Plugin, PluginDescriptor, PluginResponse, Protocol, RequestCtx};
use crate::snapshot::{PluginIndex, PluginTable, Scope};

/// The default cap on a request body buffered for a plugin (1 MiB); larger
/// bodies stream and plugins see no body.
pub const DEFAULT_BODY_CAP: usize = 1024 * 1024;

/// Which of (route, service, consumer) each rank requires, most specific
/// first.
const RANKS: [(bool, bool, bool); 8] = [
    (true, true, true),
    (true, false, true),
    (false, true, true),
    (true, true, false),
    (false, false, true),
    (true, false, false),
    (false, true, false),
    (false, false, false),
];

/// The most specific instance of `table` for a request on `protocol` that
/// matched `route` (of `service`) with `consumer` authenticated so far.
pub fn resolve(
    table: &PluginTable,
    protocol: Protocol,
    route: Option<Uuid>,
    service: Option<Uuid>,
    consumer: Option<Uuid>,
) -> Option<&Arc<dyn Plugin>> {
    RANKS
        .iter()
        .find_map(|&(needs_route, needs_service, needs_consumer)| {
            let scope = Scope {
                route: required(needs_route, route)?,
                service: required(needs_service, service)?,
                consumer: required(needs_consumer, consumer)?,
            };
            table.get(protocol, &scope)
        })
}

/// `Some(Some(id))` when the rank requires the id and it is known,
/// `Some(None)` when the rank does not use it, `None` when the rank cannot
/// apply.
fn required(needed: bool, id: Option<Uuid>) -> Option<Option<Uuid>> {
    match (needed, id) {
        (false, _) => Some(None),
        (true, Some(id)) => Some(Some(id)),
        (true, None) => None,
    }
}

/// Runs the plugins of one request and remembers which instances were
/// resolved, for the response phase.
pub struct PluginRunner {
    collected: Vec<(&'static PluginDescriptor, Arc<dyn Plugin>)>,
    body_cap: usize,
}

impl PluginRunner {
    /// A runner buffering request bodies up to `body_cap` bytes for plugins
    /// that need them.
    pub fn new(body_cap: usize) -> Self {
        PluginRunner {
            collected: Vec::new(),
            body_cap,
        }
    }

    /// The access phase. Resolves every plugin name in run order; runs each
    /// resolved instance's access handler until one responds. Returns that
    /// response (the request must not be proxied), or `None` to proxy.
    pub async fn access(
        &mut self,
        plugins: &PluginIndex,
        ctx: &mut RequestCtx,
    ) -> Option<PluginResponse> {
        let protocol = ctx.protocol();
        let route = Some(ctx.matched.route.id);
        let service = ctx.matched.service.as_ref().map(|service| service.id);
        let mut response = None;
        for table in plugins.tables() {
            let consumer = ctx.consumer().map(|consumer| consumer.id);
            let Some(instance) = resolve(table, protocol, route, service, consumer) else {
                continue;
            };
            self.collected.push((table.plugin, Arc::clone(instance)));
            if response.is_none() && table.plugin.phases.access {
                response = self.run_access(instance.as_ref(), ctx).await;
            }
        }
        response
    }

    /// Runs one access handler, buffering the body first if it asks. A
    /// body that breaks gets 400, one that stalls past the client body
    /// timeout 408 (nginx's `client_body_timeout`), and the connection is
    /// closed after either.
    async fn run_access(
        &self,
        plugin: &dyn Plugin,
        ctx: &mut RequestCtx,
    ) -> Option<PluginResponse> {
        if plugin.needs_body() {
            if let Err(error) = ctx.buffer_body(self.body_cap).await {
                tracing::debug!(%error, "cannot read the request body");
                let status = if body::is_client_body_timeout(error.as_ref()) {
                    StatusCode::REQUEST_TIMEOUT
                } else {
                    StatusCode::BAD_REQUEST
                };
                let mut headers = HeaderMap::new();
                if ctx.request.version != Version::HTTP_2 {
                    headers.insert(CONNECTION, HeaderValue::from_static("close"));
                }
                return Some(ctx.error(status, None, headers));
            }
        }
        match plugin.access(ctx).await {
            Flow::Continue => None,
            Flow::Respond(response) => Some(response),
        }
    }

    /// The response phase: the response handler of every resolved instance
    /// whose plugin has one, in run order.
    pub async fn response(&self, ctx: &mut RequestCtx, head: &mut http::response::Parts) {
        for (plugin, instance) in &self.collected {
            if plugin.phases.response {
                instance.response(ctx, head).await;
            }
        }
    }

    /// The instances that have a log phase, in run order, for the
    /// response body's completion to run; `None` (and nothing kept) when
    /// none has.
    pub fn into_log_phase(self) -> Option<LogPhase> {
        if !self.collected.iter().any(|(plugin, _)| plugin.phases.log) {
            return None;
        }
        let mut instances = self.collected;
        instances.retain(|(plugin, _)| plugin.phases.log);
        Some(LogPhase { instances })
    }

    /// The names of the resolved instances, in run order.
    pub fn collected_names(&self) -> Vec<&'static str> {
        self.collected
            .iter()
            .map(|(plugin, _)| plugin.name)
            .collect()
    }
}

/// The log phase of one request: its instances that declare it.
pub struct LogPhase {
    instances: Vec<(&'static PluginDescriptor, Arc<dyn Plugin>)>,
}

impl LogPhase {
    /// Runs [`Plugin::log`] of each instance, in run order.
    pub fn run(&self, entry: &LogEntry<'_>) {
        for (_, instance) in &self.instances {
            instance.log(entry);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pdk::body;
    use crate::pdk::{Downstream, Matched, PluginEnv};
    use crate::router::UriCaptures;
    use crate::snapshot::tests::{
        consumer, credential, key_auth_config, plugin, route, service, termination_config,
    };
    use crate::snapshot::Snapshot;
    use schemas::config::Config;
    use schemas::model::Route;
    use serde_json::Value;

    /// A context for `uri` on the first route of `snapshot`.
    pub fn ctx_for(snapshot: Arc<Snapshot>, config: &Config, uri: &str) -> RequestCtx {
        let request = http::Request::get(uri).body(bytes::Bytes::new()).unwrap();
        ctx_with_request(snapshot, config, request)
    }

    pub fn ctx_with_request(
        snapshot: Arc<Snapshot>,
        config: &Config,
        request: http::Request<bytes::Bytes>,
    ) -> RequestCtx {
        let route: Route = serde_json::from_value(config.routes[0].clone()).unwrap();
        let service = route
            .service
            .and_then(|key| snapshot.service(&key.id).cloned());
        let matched = Matched {
            route: Arc::new(route),
            service,
            uri_captures: UriCaptures::default(),
        };
        let downstream = Downstream {
            client_addr: "127.0.0.1:5555".parse().unwrap(),
            tls: false,
            listen_port: 8000,
            sni: None,
        };
        let (parts, bytes) = request.into_parts();
        RequestCtx::new(
            parts,
            body::full(bytes),
            downstream,
            "rid".into(),
            matched,
            snapshot,
        )
    }

    struct Ids {
        route: Uuid,
        service: Uuid,
        consumer: Uuid,
    }

    fn base_config(ids: &Ids) -> Config {
        Config {
            services: vec![service(ids.service)],
            routes: vec![route(ids.route, Some(ids.service), "/")],
            consumers: vec![consumer(ids.consumer, "alice")],
            keyauth_credentials: vec![credential(Uuid::new_v4(), ids.consumer, "secret", None, 1)],
            plugins: vec![],
        }
    }

    /// The eight scopes, most specific first.
    fn scopes(ids: &Ids) -> Vec<Scope> {
        RANKS
            .iter()
            .map(|&(r, s, c)| Scope {
                route: r.then_some(ids.route),
                service: s.then_some(ids.service),
                consumer: c.then_some(ids.consumer),
            })
            .collect()
    }

    fn termination_at(status: u16, scope: Scope) -> Value {
        plugin("request-termination", termination_config(status), scope)
    }

    #[test]
    fn resolves_all_eight_ranks_in_order() {
        let ids = Ids {
            route: Uuid::new_v4(),
            service: Uuid::new_v4(),
            consumer: Uuid::new_v4(),
        };
        let scopes = scopes(&ids);
        for rank in 0..8 {
            let mut config = base_config(&ids);
            config.plugins = scopes[rank..]
                .iter()
                .enumerate()
                .map(|(offset, scope)| termination_at(401 + (rank + offset) as u16, *scope))
                .collect();
            let snapshot = Arc::new(Snapshot::build(&config, &PluginEnv::default()).unwrap());
            let table = &snapshot.plugins().tables()[0];
            let resolved = resolve(
                table,
                Protocol::Http,
                Some(ids.route),
                Some(ids.service),
                Some(ids.consumer),
            )
            .expect("an instance applies");
            let response = run_alone(resolved, &snapshot, &config);
            assert_eq!(response.status(), 401 + rank as u16, "rank {}", rank + 1);
        }
    }

    #[test]
    fn unknown_ids_skip_ranks_that_need_them() {
        let ids = Ids {
            route: Uuid::new_v4(),
            service: Uuid::new_v4(),
            consumer: Uuid::new_v4(),
        };
        let mut config = base_config(&ids);
        config.plugins = scopes(&ids)
            .iter()
            .enumerate()
            .map(|(rank, scope)| termination_at(401 + rank as u16, *scope))
            .collect();
        let snapshot = Arc::new(Snapshot::build(&config, &PluginEnv::default()).unwrap());
        let table = &snapshot.plugins().tables()[0];
        let status = |route, service, consumer| {
            let resolved = resolve(table, Protocol::Http, route, service, consumer).unwrap();
            run_alone(resolved, &snapshot, &config).status().as_u16()
        };
        assert_eq!(status(Some(ids.route), Some(ids.service), None), 404);
        assert_eq!(status(None, Some(ids.service), Some(ids.consumer)), 403);
        assert_eq!(status(None, None, Some(ids.consumer)), 405);
        assert_eq!(status(Some(ids.route), None, None), 406);
        assert_eq!(status(None, Some(ids.service), None), 407);
        assert_eq!(status(None, None, None), 408);
        let other = Uuid::new_v4();
        assert_eq!(status(Some(other), Some(other), Some(other)), 408);
    }

    fn run_alone(
        instance: &Arc<dyn Plugin>,
        snapshot: &Arc<Snapshot>,
        config: &Config,
    ) -> PluginResponse {
        let mut ctx = ctx_for(Arc::clone(snapshot), config, "/");
        let access = instance.access(&mut ctx);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        match runtime.block_on(access) {
            Flow::Respond(response) => response,
            Flow::Continue => panic!("request-termination responds"),
        }
    }

    #[tokio::test]
    async fn consumer_scoped_plugins_see_the_consumer_authenticated_earlier() {
        let ids = Ids {
            route: Uuid::new_v4(),
            service: Uuid::new_v4(),
            consumer: Uuid::new_v4(),
        };
        let mut config = base_config(&ids);
        config.plugins = vec![
            plugin("key-auth", key_auth_config(), Scope::default()),
            termination_at(
                451,
                Scope {
                    consumer: Some(ids.consumer),
                    ..Scope::default()
                },
            ),
            termination_at(503, Scope::default()),
        ];
        let snapshot = Arc::new(Snapshot::build(&config, &PluginEnv::default()).unwrap());

        let mut with_key = ctx_for(Arc::clone(&snapshot), &config, "/?apikey=secret");
        let mut runner = PluginRunner::new(DEFAULT_BODY_CAP);
        let response = runner
            .access(snapshot.plugins(), &mut with_key)
            .await
            .expect("terminated");
        assert_eq!(response.status(), 451);
        assert_eq!(
            runner.collected_names(),
            ["key-auth", "request-termination"]
        );

        let mut without_key = ctx_for(Arc::clone(&snapshot), &config, "/");
        let mut runner = PluginRunner::new(DEFAULT_BODY_CAP);
        let response = runner
            .access(snapshot.plugins(), &mut without_key)
            .await
            .expect("rejected");
        assert_eq!(response.status(), 401, "key-auth short-circuits first");
        assert_eq!(
            runner.collected_names(),
            ["key-auth", "request-termination"],
            "later plugins are still collected for the response phase"
        );
    }

    /// Plugins whose descriptor has no response phase are skipped.
    #[tokio::test]
    async fn response_phase_runs_for_collected_plugins_only() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        struct Counting(Arc<AtomicUsize>);
        #[async_trait::async_trait]
        impl Plugin for Counting {
            async fn response(&self, _: &mut RequestCtx, head: &mut http::response::Parts) {
                self.0.fetch_add(1, Ordering::SeqCst);
                head.headers
                    .insert("x-counted", http::HeaderValue::from_static("1"));
            }
        }

        let ids = Ids {
            route: Uuid::new_v4(),
            service: Uuid::new_v4(),
            consumer: Uuid::new_v4(),
        };
        let config = base_config(&ids);
        let snapshot = Arc::new(Snapshot::build(&config, &PluginEnv::default()).unwrap());
        let mut ctx = ctx_for(snapshot, &config, "/");
        let calls = Arc::new(AtomicUsize::new(0));
        let with_response = &crate::plugins::session::DESCRIPTOR;
        let without_response = &crate::plugins::key_auth::DESCRIPTOR;
        let runner = PluginRunner {
            collected: vec![
                (
                    with_response,
                    Arc::new(Counting(Arc::clone(&calls))) as Arc<dyn Plugin>,
                ),
                (without_response, Arc::new(Counting(Arc::clone(&calls)))),
            ],
            body_cap: DEFAULT_BODY_CAP,
        };
        let (mut head, ()) = http::Response::new(()).into_parts();
        runner.response(&mut ctx, &mut head).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(head.headers["x-counted"], "1");
    }
}
