//! The request-termination plugin (priority 2): answers the request itself
//! instead of proxying it.
//!
//! In order ([`RequestTermination::access`]):
//! 1. with a `trigger`, do nothing unless a header (`_`/`-` equivalent) or a
//!    query argument of that name is present, with any value;
//! 2. with `echo`, answer a JSON document describing the request, the
//!    matched route and service;
//! 3. with a `body`, answer it as is, with `content_type` if set;
//! 4. otherwise answer `{"message": ...}` with the configured message or the
//!    status's default ([`default_message`]); without either, an empty body.
//!
//! Responses go through `kong.response.exit`, so JSON bodies are compact and
//! carry no request id.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use http::StatusCode;
use schemas::plugins::request_termination::{default_message, RequestTerminationConfig};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::pdk::request_data::{header_arg, pairs_to_json, parse_pairs, query_arg, ParsedBody};
use crate::pdk::response::ExitBody;
use crate::pdk::{Flow, Phases, Plugin, PluginBuildError, PluginDescriptor, PluginEnv, RequestCtx};

pub use schemas::plugins::request_termination::NAME;

/// request-termination runs in the access phase only.
pub const DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    name: NAME,
    phases: Phases {
        access: true,
        response: false,
        log: false,
    },
    build,
    background: None,
};

/// One request-termination instance.
#[derive(Debug)]
pub struct RequestTermination {
    status: StatusCode,
    /// `message`, or the status's default message.
    message: Option<String>,
    body: Option<Bytes>,
    content_type: Option<HeaderValue>,
    echo: bool,
    trigger: Option<String>,
    node_id: Uuid,
    hostname: String,
}

/// Builds an instance from a plugin row (the [`crate::pdk::PluginFactory`]).
pub fn build(
    row: &schemas::model::Plugin,
    env: &PluginEnv,
) -> Result<Arc<dyn Plugin>, PluginBuildError> {
    let config: RequestTerminationConfig = serde_json::from_value(row.config.clone())?;
    let status = StatusCode::from_u16(config.status_code).map_err(|_| {
        PluginBuildError::Invalid(format!("bad status_code {}", config.status_code))
    })?;
    let content_type = config
        .content_type
        .as_deref()
        .map(HeaderValue::from_str)
        .transpose()
        .map_err(|_| {
            PluginBuildError::Invalid("content_type is not a valid header value".into())
        })?;
    let message = config
        .message
        .or_else(|| default_message(config.status_code).map(str::to_owned));
    Ok(Arc::new(RequestTermination {
        status,
        message,
        body: config.body.map(Bytes::from),
        content_type,
        echo: config.echo,
        trigger: config.trigger,
        node_id: env.node_id,
        hostname: env.hostname.clone(),
    }))
}

#[async_trait::async_trait]
impl Plugin for RequestTermination {
    /// The echo shows the parsed request body.
    fn needs_body(&self) -> bool {
        self.echo
    }

    async fn access(&self, ctx: &mut RequestCtx) -> Flow {
        if !self.is_triggered(ctx) {
            return Flow::Continue;
        }
        let response = if self.echo {
            ctx.exit(
                self.status,
                ExitBody::Json(self.echo_document(ctx)),
                HeaderMap::new(),
            )
        } else if let Some(body) = &self.body {
            ctx.exit(
                self.status,
                ExitBody::Raw(body.clone()),
                self.body_headers(),
            )
        } else {
            let body = match &self.message {
                Some(message) => ExitBody::Json(json!({ "message": message })),
                None => ExitBody::Empty,
            };
            ctx.exit(self.status, body, HeaderMap::new())
        };
        Flow::Respond(response)
    }
}

impl RequestTermination {
    /// Without a trigger, always; with one, when the request names it.
    fn is_triggered(&self, ctx: &RequestCtx) -> bool {
        let Some(trigger) = &self.trigger else {
            return true;
        };
        header_arg(&ctx.request.headers, trigger).is_present()
            || query_arg(ctx.query(), trigger).is_present()
    }

    fn body_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(content_type) = &self.content_type {
            headers.insert(CONTENT_TYPE, content_type.clone());
        }
        headers
    }

    /// The echo document: message, node, request, matched route and service.
    fn echo_document(&self, ctx: &RequestCtx) -> Value {
        let mut document = Map::new();
        if let Some(message) = &self.message {
            document.insert("message".into(), Value::from(message.as_str()));
        }
        document.insert(
            "kong".into(),
            json!({
                "node_id": self.node_id,
                "worker_pid": std::process::id(),
                "hostname": self.hostname,
            }),
        );
        document.insert("request".into(), echo_request(ctx));
        document.insert(
            "matched_route".into(),
            serde_json::to_value(ctx.matched.route.as_ref()).unwrap_or(Value::Null),
        );
        if let Some(service) = &ctx.matched.service {
            let service = serde_json::to_value(service.as_ref()).unwrap_or(Value::Null);
            document.insert("matched_service".into(), service);
        }
        Value::Object(document)
    }
}

/// The `request` part of the echo document.
fn echo_request(ctx: &RequestCtx) -> Value {
    let mut request = Map::new();
    request.insert("scheme".into(), Value::from(ctx.protocol().as_str()));
    request.insert("host".into(), Value::from(ctx.host()));
    request.insert("port".into(), Value::from(ctx.downstream.listen_port));
    request.insert("headers".into(), headers_json(&ctx.request.headers));
    request.insert(
        "query".into(),
        pairs_to_json(&parse_pairs(ctx.query().unwrap_or(""))),
    );
    if let Some(raw) = ctx.body() {
        if let Some(parsed) = ParsedBody::parse(&ctx.request.headers, raw).to_json() {
            request.insert("body".into(), parsed);
        }
        let raw_body = String::from_utf8_lossy(raw).into_owned();
        request.insert("raw_body".into(), Value::from(raw_body));
    }
    request.insert("method".into(), Value::from(ctx.request.method.as_str()));
    request.insert("path".into(), Value::from(ctx.path()));
    let captures = &ctx.matched.uri_captures;
    request.insert(
        "uri_captures".into(),
        json!({ "named": captures.named, "unnamed": captures.unnamed }),
    );
    Value::Object(request)
}

/// Request headers with lowercase names: a string each, an array when
/// repeated.
fn headers_json(headers: &HeaderMap) -> Value {
    let mut object = Map::new();
    for name in headers.keys() {
        let mut values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|value| Value::from(String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        let value = if values.len() == 1 {
            values.remove(0)
        } else {
            Value::Array(values)
        };
        object.insert(name.as_str().to_owned(), value);
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::phases::tests::ctx_with_request;
    use crate::proxy::phases::{PluginRunner, DEFAULT_BODY_CAP};
    use crate::snapshot::tests::{plugin, route, service};
    use crate::snapshot::{Scope, Snapshot};
    use http::header::CONTENT_LENGTH;
    use schemas::config::Config;

    fn config_with(termination: Value) -> Config {
        let (service_id, route_id) = (Uuid::new_v4(), Uuid::new_v4());
        Config {
            services: vec![service(service_id)],
            routes: vec![route(route_id, Some(service_id), "/")],
            plugins: vec![plugin(NAME, termination, Scope::default())],
            ..Config::default()
        }
    }

    fn termination(overrides: Value) -> Value {
        let mut config = json!({"status_code": 503, "message": null, "content_type": null,
                                "body": null, "echo": false, "trigger": null});
        for (key, value) in overrides.as_object().unwrap() {
            config[key] = value.clone();
        }
        config
    }

    async fn run(overrides: Value, request: http::Request<Bytes>) -> Option<http::Response<Bytes>> {
        let config = config_with(termination(overrides));
        let env = PluginEnv {
            node_id: Uuid::nil(),
            hostname: "gw-host".into(),
            ..PluginEnv::default()
        };
        let snapshot = Arc::new(Snapshot::build(&config, &env).unwrap());
        let mut ctx = ctx_with_request(Arc::clone(&snapshot), &config, request);
        PluginRunner::new(DEFAULT_BODY_CAP)
            .access(snapshot.plugins(), &mut ctx)
            .await
    }

    fn get(uri: &str) -> http::Request<Bytes> {
        http::Request::get(uri).body(Bytes::new()).unwrap()
    }

    fn text(response: &http::Response<Bytes>) -> &str {
        std::str::from_utf8(response.body()).unwrap()
    }

    #[tokio::test]
    async fn default_status_and_message() {
        let response = run(json!({}), get("/")).await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(text(&response), r#"{"message":"Service unavailable"}"#);
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "application/json; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn statuses_without_default_have_an_empty_body() {
        let response = run(json!({"status_code": 403}), get("/")).await.unwrap();
        assert_eq!(response.status(), 403);
        assert!(response.body().is_empty());
        assert_eq!(response.headers()[CONTENT_LENGTH], "0");
        assert!(!response.headers().contains_key(CONTENT_TYPE));
    }

    #[tokio::test]
    async fn custom_message() {
        let response = run(
            json!({"status_code": 403, "message": "So it goes."}),
            get("/"),
        )
        .await
        .unwrap();
        assert_eq!(text(&response), r#"{"message":"So it goes."}"#);
    }

    #[tokio::test]
    async fn raw_body_with_and_without_content_type() {
        let overrides =
            json!({"status_code": 200, "body": "<h1>hi</h1>", "content_type": "text/html"});
        let response = run(overrides, get("/")).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(text(&response), "<h1>hi</h1>");
        assert_eq!(response.headers()[CONTENT_TYPE], "text/html");

        let response = run(json!({"body": "plain"}), get("/")).await.unwrap();
        assert_eq!(text(&response), "plain");
        assert!(!response.headers().contains_key(CONTENT_TYPE));
    }

    #[tokio::test]
    async fn trigger_by_header_or_query() {
        let overrides = json!({"trigger": "x_stop"});
        assert!(run(overrides.clone(), get("/")).await.is_none());
        assert!(run(overrides.clone(), get("/?x_stop")).await.is_some());
        assert!(run(overrides.clone(), get("/?x-stop=1")).await.is_none());
        let header = http::Request::get("/")
            .header("x-stop", "")
            .body(Bytes::new())
            .unwrap();
        assert!(run(overrides, header).await.is_some());
    }

    #[tokio::test]
    async fn echo_describes_the_request() {
        let request = http::Request::post("/echo?a=1&a=2&flag")
            .header("host", "example.com:8000")
            .header("content-type", "application/json")
            .body(Bytes::from_static(br#"{"x":1}"#))
            .unwrap();
        let response = run(json!({"status_code": 404, "echo": true}), request)
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        let document: Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(document["message"], "Not found");
        assert_eq!(document["kong"]["hostname"], "gw-host");
        let request = &document["request"];
        assert_eq!(request["scheme"], "http");
        assert_eq!(request["host"], "example.com");
        assert_eq!(request["port"], 8000);
        assert_eq!(request["method"], "POST");
        assert_eq!(request["path"], "/echo");
        assert_eq!(request["query"], json!({"a": ["1", "2"], "flag": true}));
        assert_eq!(request["body"], json!({"x": 1}));
        assert_eq!(request["raw_body"], r#"{"x":1}"#);
        assert_eq!(request["headers"]["content-type"], "application/json");
        assert!(document["matched_route"]["id"].is_string());
        assert!(document["matched_service"]["id"].is_string());
    }
}
